package serve

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Compressed request bodies. tritonclient.http's request_compression_algorithm
// sends "Content-Encoding: gzip" (gzip.compress) or "deflate" (zlib.compress),
// and Triton's HTTP server inflates both (src/http_server.cc@r24.08,
// DecompressBuffer). The limit applies to the inflated size: a small body
// that inflates past --max-request-bytes is refused with 413, so a zip bomb
// costs at most the limit.

// requestBody returns r's body, inflated when it is compressed, that reads
// at most limit bytes of content before failing with a too-large error.
func (s *Server) requestBody(w http.ResponseWriter, r *http.Request, limit int64) (io.Reader, bool, error) {
	raw := http.MaxBytesReader(w, r.Body, limit)
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	var body io.Reader
	switch enc {
	case "", "identity":
		return raw, false, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, true, compressionError(enc, err, limit)
		}
		body = zr
	case "deflate":
		// HTTP's deflate is zlib-wrapped (RFC 9110 §8.4.1.2); some clients
		// send a raw deflate stream, which is accepted too.
		br := bufio.NewReader(raw)
		if hdr, err := br.Peek(2); err == nil && isZlibHeader(hdr) {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, true, compressionError(enc, err, limit)
			}
			body = zr
		} else {
			body = flate.NewReader(br)
		}
	default:
		return nil, true, errorf(kindUnsupported, "Content-Encoding %q is not supported; send gzip, deflate or an uncompressed body", enc)
	}
	return &inflateLimit{r: body, left: limit, limit: limit, enc: enc}, true, nil
}

// isZlibHeader checks RFC 1950's two header bytes: method 8 and the check bits.
func isZlibHeader(h []byte) bool {
	return h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0
}

// inflateLimit reads an inflating reader and fails once more than limit
// bytes come out of it.
type inflateLimit struct {
	r     io.Reader
	left  int64
	limit int64
	enc   string
}

func (l *inflateLimit) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, inflatedTooLarge(l.limit)
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, inflatedTooLarge(l.limit)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return n, compressionError(l.enc, err, l.limit)
	}
	return n, err
}

func inflatedTooLarge(limit int64) error {
	return errorf(kindTooLarge, "request body inflates to more than the limit of %d bytes (--max-request-bytes)", limit)
}

// compressionError keeps the compressed body's own size limit a 413 and
// calls anything else a corrupt body.
func compressionError(enc string, err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(kindTooLarge, "request body is larger than the limit of %d bytes (--max-request-bytes)", limit)
	}
	return invalidf("request body is not valid %s data: %v", enc, err)
}
