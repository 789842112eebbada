package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Protocols the bench speaks.
const (
	ProtoKServeHTTP = "kserve-http"
	ProtoKServeGRPC = "kserve-grpc"
	ProtoOpenAI     = "openai"
)

// Protocols lists the accepted --protocol values.
var Protocols = []string{ProtoKServeHTTP, ProtoKServeGRPC, ProtoOpenAI}

// ClientOptions configure a protocol client.
type ClientOptions struct {
	URL     string
	Model   string
	Version string
	// InputName is the KServe input tensor's name (default "text").
	InputName string
	// Groups are the texts of each pre-encoded request.
	Groups [][]string
	// MaxConns sizes the connection pool: the largest concurrency.
	MaxConns int
	// BinaryOutput asks a KServe HTTP server for the embeddings in Triton's
	// binary tensor format (request parameter binary_data_output) instead
	// of JSON numbers.
	BinaryOutput bool
}

// httpClient posts pre-encoded JSON bodies; the server's status decides
// success. Bodies are encoded once, so a request costs the HTTP round trip
// and little else.
type httpClient struct {
	hc     *http.Client
	tmpl   *http.Request // parsed once; each call shallow-copies it
	bodies [][]byte
	raw    *rawHTTP // http:// URLs: the lean path (client_raw.go)
}

// NewHTTPTransport returns a transport whose idle pool holds one connection
// per concurrent worker so that every request reuses a connection.
func NewHTTPTransport(maxConns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns + 16,
		MaxIdleConnsPerHost: maxConns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// NewKServeHTTPClient posts KServe v2 inference requests:
// {"inputs":[{"name":"text","shape":[N,1],"datatype":"BYTES","data":[...]}]}
// to {url}/v2/models/{model}[/versions/{v}]/infer.
func NewKServeHTTPClient(o ClientOptions) (Client, error) {
	if o.InputName == "" {
		o.InputName = "text"
	}
	u := strings.TrimRight(o.URL, "/") + "/v2/models/" + o.Model
	if o.Version != "" {
		u += "/versions/" + o.Version
	}
	u += "/infer"
	type input struct {
		Name     string   `json:"name"`
		Shape    []int    `json:"shape"`
		Datatype string   `json:"datatype"`
		Data     []string `json:"data"`
	}
	type body struct {
		Parameters map[string]any `json:"parameters,omitempty"`
		Inputs     []input        `json:"inputs"`
	}
	var params map[string]any
	if o.BinaryOutput {
		params = map[string]any{"binary_data_output": true}
	}
	return newHTTPClient(o, u, func(g []string) any {
		return body{Parameters: params, Inputs: []input{{Name: o.InputName, Shape: []int{len(g), 1}, Datatype: "BYTES", Data: g}}}
	})
}

// NewOpenAIClient posts {"model":..., "input":...} to {url}/v1/embeddings.
func NewOpenAIClient(o ClientOptions) (Client, error) {
	u := strings.TrimRight(o.URL, "/")
	u = strings.TrimSuffix(u, "/v1") + "/v1/embeddings"
	return newHTTPClient(o, u, func(g []string) any {
		var in any = g
		if len(g) == 1 {
			in = g[0]
		}
		return map[string]any{"model": o.Model, "input": in}
	})
}

func newHTTPClient(o ClientOptions, u string, encode func([]string) any) (Client, error) {
	if len(o.Groups) == 0 {
		return nil, fmt.Errorf("no texts to send")
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("url %q: want http:// or https://", o.URL)
	}
	tmpl, err := http.NewRequest(http.MethodPost, u, nil)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", o.URL, err)
	}
	tmpl.Header = http.Header{
		"Content-Type": {"application/json"},
		"Accept":       {"application/json"},
	}
	c := &httpClient{hc: &http.Client{Transport: NewHTTPTransport(max(1, o.MaxConns))}, tmpl: tmpl}
	for _, g := range o.Groups {
		b, err := json.Marshal(encode(g))
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		c.bodies = append(c.bodies, b)
	}
	if tmpl.URL.Scheme == "http" {
		c.raw = newRawHTTP(tmpl.URL, c.bodies, max(1, o.MaxConns))
	}
	return c, nil
}

// Do sends body i and drains the answer so the connection is reused.
func (c *httpClient) Do(ctx context.Context, i int) error {
	if c.raw != nil {
		return c.raw.Do(ctx, i)
	}
	body := c.bodies[i%len(c.bodies)]
	// The template's URL and headers are shared read-only: a round trip
	// never modifies its request.
	req := c.tmpl.WithContext(ctx)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_, _ = io.Copy(io.Discard, resp.Body)
		return &StatusError{Kind: "http_" + strconv.Itoa(resp.StatusCode), Msg: strings.TrimSpace(string(msg))}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// Close releases idle connections.
func (c *httpClient) Close() error {
	c.hc.CloseIdleConnections()
	if c.raw != nil {
		return c.raw.Close()
	}
	return nil
}
