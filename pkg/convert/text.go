package convert

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteText writes the report for people: the same facts as the JSON form,
// laid out in aligned columns, with the suggested profile as trtexec flags
// that can be pasted.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", r.Path)
	producer := strings.TrimSpace(r.Producer + " " + r.ProducerVersion)
	if producer == "" {
		producer = "unknown"
	}
	fmt.Fprintf(tw, "format\tONNX IR %d, opset %d, produced by %s\n", r.IRVersion, r.Opset, producer)
	writeValues(tw, "inputs", r.Inputs)
	writeValues(tw, "outputs", r.Outputs)
	fmt.Fprintf(tw, "parameters\t%s (%s)\n", groupThousands(r.Parameters), humanBytes(r.ParameterBytes))
	if len(r.ExternalData) == 0 {
		fmt.Fprintf(tw, "external data\tnone (weights inside the model file)\n")
	} else {
		fmt.Fprintf(tw, "external data\t%s\n", strings.Join(r.ExternalData, ", "))
	}
	if a := r.Architecture; a != nil {
		fmt.Fprintf(tw, "architecture\t%s: %d layers, hidden %d, %d heads, intermediate %d, vocabulary %d, %d positions\n",
			a.Type, a.Layers, a.Hidden, a.Heads, a.Intermediate, a.VocabSize, a.MaxPositions)
	} else {
		fmt.Fprintf(tw, "architecture\tnot recognised (no word-embedding table)\n")
	}
	if e, ok := r.Embeddings(); ok {
		fmt.Fprintf(tw, "pooling\tin the graph: %s %s is the sentence embedding; embed, serve and verify-engine skip their own pooling\n",
			e.Name, FormatShape(e.Shape))
	}
	if p := r.SuggestedProfile; p != nil {
		for i, f := range p.TrtexecFlags(r.Inputs) {
			label := ""
			if i == 0 {
				label = "trtexec profile"
			}
			fmt.Fprintf(tw, "%s\t%s\n", label, f)
		}
	} else {
		fmt.Fprintf(tw, "trtexec profile\tnone needed (no dynamic [batch, seq] inputs)\n")
	}
	total := 0
	for _, n := range r.Ops {
		total += n
	}
	fmt.Fprintf(tw, "ops\t%d nodes, %d op types\n", total, len(r.Ops))
	if err := tw.Flush(); err != nil {
		return err
	}
	// The histogram goes in rows of four, most frequent first.
	type opCount struct {
		op string
		n  int
	}
	ops := make([]opCount, 0, len(r.Ops))
	for op, n := range r.Ops {
		ops = append(ops, opCount{op, n})
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].n != ops[j].n {
			return ops[i].n > ops[j].n
		}
		return ops[i].op < ops[j].op
	})
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, o := range ops {
		sep := "\t"
		if i%4 == 3 || i == len(ops)-1 {
			sep = "\n"
		}
		fmt.Fprintf(tw, "  %s %d%s", o.op, o.n, sep)
	}
	return tw.Flush()
}

func writeValues(w io.Writer, label string, vs []ValueInfo) {
	if len(vs) == 0 {
		fmt.Fprintf(w, "%s\tnone\n", label)
	}
	for i, v := range vs {
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", label, v.Name, v.DType, FormatShape(v.Shape))
	}
}

// FormatShape writes a shape as [batch_size, max_seq_len, 64], with ? for
// an unknown dimension.
func FormatShape(s []Dim) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// TrtexecFlags renders the profile as trtexec's three shape flags, inputs
// in the graph's order (the order given; names missing from the profile
// are skipped), e.g. --minShapes=input_ids:1x1,attention_mask:1x1.
func (p *Profile) TrtexecFlags(order []ValueInfo) []string {
	spec := func(m map[string][]int64) string {
		var parts []string
		for _, in := range order {
			dims, ok := m[in.Name]
			if !ok {
				continue
			}
			s := make([]string, len(dims))
			for i, d := range dims {
				s[i] = fmt.Sprint(d)
			}
			name := in.Name
			if strings.ContainsAny(name, ":,") {
				name = "'" + name + "'"
			}
			parts = append(parts, name+":"+strings.Join(s, "x"))
		}
		return strings.Join(parts, ",")
	}
	return []string{"--minShapes=" + spec(p.Min), "--optShapes=" + spec(p.Opt), "--maxShapes=" + spec(p.Max)}
}

// groupThousands writes 1452160 as 1,452,160.
func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// humanBytes writes a byte count in binary units: 5.5 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
