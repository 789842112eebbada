package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestEveryCodePoint compares the normaliser and pre-tokenizer with the
// tokenizers library on every Unicode scalar value, in four configurations.
// testdata/tokenizer/codepoints.json holds, per block of 4096 code points, a
// hash of the library's words for "x"+c+"x "+c (made with the npm tokenizers
// 0.23.2 bindings); a mismatch names the block and configuration.
func TestEveryCodePoint(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokenizer", "codepoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Configs []struct {
			Cfg struct {
				Clean, Chinese, Lower bool
				Strip                 *bool
			}
			Blocks []string
		}
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	base := fixtureTokenizer(t)
	if raceOn {
		golden.Configs = golden.Configs[:1] // the default configuration
	}
	for _, g := range golden.Configs {
		tk := *base
		tk.clean, tk.chinese, tk.lower, tk.strip = g.Cfg.Clean, g.Cfg.Chinese, g.Cfg.Lower, g.Cfg.Lower
		if g.Cfg.Strip != nil {
			tk.strip = *g.Cfg.Strip
		}
		name := strings.NewReplacer(" ", ",", "{", "", "}", "").Replace(
			strings.TrimSpace(strings.ReplaceAll(jsonString(g.Cfg), "\"", "")))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var line []byte
			for blk, want := range g.Blocks {
				h := sha256.New()
				for r := rune(blk * 4096); r < rune(blk+1)*4096; r++ {
					if !utf8.ValidRune(r) {
						continue
					}
					text := "x" + string(r) + "x " + string(r)
					line = append(line[:0], text...)
					line = append(line, 0)
					for i, w := range tk.words(text) {
						if i > 0 {
							line = append(line, 1)
						}
						line = append(line, w...)
					}
					h.Write(append(line, '\n'))
				}
				if got := hex.EncodeToString(h.Sum(nil))[:16]; got != want {
					t.Errorf("code points U+%04X–U+%04X differ from the tokenizers library", blk*4096, (blk+1)*4096-1)
				}
			}
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestOracleCases runs whole strings through Encode: random mixes of
// scripts, marks, controls, emoji and special tokens, some past 512 tokens,
// with the ids the tokenizers library gives on the fixture's tokenizer.json.
func TestOracleCases(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokenizer", "oracle_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	tok := fixtureTokenizer(t)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var c struct {
			Text string
			IDs  []int32
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		n++
		if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("Encode(%+q)\n got %v\nwant %v", c.Text, got, c.IDs)
		}
	}
	if n < 250 {
		t.Fatalf("only %d cases", n)
	}
}
