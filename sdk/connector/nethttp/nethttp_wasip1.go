//go:build wasip1

package nethttp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol"
)

func newTransport(*egress.Guard) http.RoundTripper { return hostTransport{} }

// hostTransport makes each request with connector.Fetch, which hands it to
// the host function relay.http_request: the host enforces the egress
// policy, follows no redirect (a 3xx comes back for the http.Client to
// follow or not, through this transport again) and caps the time and the
// response body.
type hostTransport struct{}

// errBodyTruncated ends the body of a response the host cut at its cap.
var errBodyTruncated = errors.New("the response body is longer than the host passes on; it was cut there")

func (hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, protocol.MaxMessageSize+1))
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
	}
	resp, err := connector.Fetch(req.Context(), &connector.HTTPRequest{
		Method: req.Method, URL: req.URL.String(), Header: connector.Header(req.Header), Body: body,
		MaxResponseBody: math.MaxInt32, // the host's cap is the one
	})
	if err != nil {
		return nil, err
	}
	code := resp.StatusCode
	out := &http.Response{
		Status: strconv.Itoa(code) + " " + http.StatusText(code), StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header(resp.Header), ContentLength: int64(len(resp.Body)),
		Body:    io.NopCloser(bytes.NewReader(resp.Body)),
		Request: req,
	}
	if resp.Truncated {
		out.ContentLength = -1
		out.Body = io.NopCloser(io.MultiReader(bytes.NewReader(resp.Body), errReader{errBodyTruncated}))
	}
	return out, nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
