package triton

import (
	"os"
	"testing"

	"github.com/m3ectl/m3ectl/internal/testmodels"
)

// pooledFixture is testdata/m3e-tiny/model.onnx with a mean-pooling and
// L2-normalising head, outputting embeddings [batch, 64], as the encoder
// of a generated repository must be.
func pooledFixture(t testing.TB) string {
	t.Helper()
	p, err := testmodels.PooledOnce(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	testmodels.Remove()
	os.Exit(code)
}
