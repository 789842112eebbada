package bench

import (
	"encoding/json"
	"testing"
)

// --binary-output asks for Triton's binary tensor data in every request
// body, and only then.
func TestBinaryOutputRequest(t *testing.T) {
	for _, want := range []bool{false, true} {
		cl, err := NewKServeHTTPClient(ClientOptions{URL: "http://127.0.0.1:1", Model: "m", Groups: [][]string{{"酒店很好"}}, BinaryOutput: want})
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Parameters map[string]any `json:"parameters"`
			Inputs     []struct {
				Data []string `json:"data"`
			} `json:"inputs"`
		}
		if err := json.Unmarshal(cl.(*httpClient).bodies[0], &body); err != nil {
			t.Fatal(err)
		}
		if got, _ := body.Parameters["binary_data_output"].(bool); got != want || body.Inputs[0].Data[0] != "酒店很好" {
			t.Errorf("BinaryOutput %v: body %s", want, cl.(*httpClient).bodies[0])
		}
	}
}
