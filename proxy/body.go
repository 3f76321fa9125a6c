package proxy

import (
	"io"
	"sync/atomic"
)

// heldBody hands a request's body to one attempt after another without
// letting an attempt close it (http.Transport closes the body of a request
// that fails), and tells whether any of it was read: a body nobody read,
// as after a failed dial, can go to the next backend as it is.
type heldBody struct {
	src     io.Reader
	started atomic.Bool
}

func (h *heldBody) Read(p []byte) (int, error) {
	h.started.Store(true)
	return h.src.Read(p)
}

func (h *heldBody) Close() error { return nil }
