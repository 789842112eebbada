package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReadTexts(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"one text per line", "你好\n世界\n", []string{"你好", "世界"}, ""},
		{"blank lines and CRLF", "\r\n a \r\n\r\nb\r\n", []string{" a ", "b"}, ""},
		{"BOM stripped", "\xef\xbb\xbf第一行\n", []string{"第一行"}, ""},
		{"no final newline", "x", []string{"x"}, ""},
		{"JSON lines", `{"text":"你好"}` + "\n" + `{"text":"a\nb","id":3}`, []string{"你好", "a\nb"}, ""},
		{"JSON lines with blank lines", "\n" + `{"text":""}` + "\n\n", []string{""}, ""},
		{"JSON line without text", `{"text":"a"}` + "\n" + `{"body":"b"}`, nil, `line 2: no "text" field`},
		{"malformed JSON line", `{"text":"a"}` + "\n{oops", nil, "line 2"},
		{"invalid UTF-8 line", "ok\n\xff\xfe\n", nil, "line 2: invalid UTF-8"},
		{"empty file", "", nil, "no texts"},
		{"only blanks", "\n  \n", nil, "no texts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadTexts(strings.NewReader(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("ReadTexts = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestLoadTextsNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "texts.jsonl")
	if err := os.WriteFile(p, []byte(`{"text":"a"}`+"\n"+"[1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTexts(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("LoadTexts error = %v, want it to name %s", err, p)
	}
	if _, err := LoadTexts(filepath.Join(t.TempDir(), "missing.txt")); err == nil {
		t.Error("LoadTexts of a missing file succeeded")
	}
}

func TestDefaultTextsAreVariedAndValid(t *testing.T) {
	if len(DefaultTexts) < 40 {
		t.Fatalf("%d default texts, want about 50", len(DefaultTexts))
	}
	short, long := 0, 0
	for _, s := range DefaultTexts {
		if !utf8.ValidString(s) || strings.TrimSpace(s) == "" {
			t.Errorf("bad default text %q", s)
		}
		n := utf8.RuneCountInString(s)
		if n <= 8 {
			short++
		}
		if n >= 60 {
			long++
		}
	}
	if short == 0 || long == 0 {
		t.Errorf("default texts lack variety: %d short, %d long", short, long)
	}
}

func TestGroupsCycleThroughTheTexts(t *testing.T) {
	got := Groups([]string{"a", "b", "c"}, 2)
	want := [][]string{{"a", "b"}, {"b", "c"}, {"c", "a"}}
	if len(got) != len(want) {
		t.Fatalf("Groups = %q", got)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("group %d = %q, want %q", i, got[i], want[i])
		}
	}
	if g := Groups([]string{"a"}, 0); len(g) != 1 || len(g[0]) != 1 {
		t.Errorf("Groups(n=0) = %q, want one text per request", g)
	}
}

func FuzzReadTexts(f *testing.F) {
	for _, s := range []string{"你好\n世界", `{"text":"a"}`, "\xef\xbb\xbfx", "\n\n", `{"text":1}`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ReadTexts(strings.NewReader(s))
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatal("no texts and no error")
		}
		for _, x := range got {
			if !utf8.ValidString(x) {
				t.Fatalf("invalid UTF-8 text %q accepted", x)
			}
		}
	})
}
