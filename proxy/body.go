package proxy

import (
	"io"
	"sync/atomic"
)

// heldBody is a request's body that tells whether any of it was read: a
// body nobody read, as after a failed dial, can go to the next backend as
// it is. Closing it does nothing; the server closes the request's body.
type heldBody struct {
	src     io.Reader
	started atomic.Bool
}

func (h *heldBody) Read(p []byte) (int, error) {
	h.started.Store(true)
	return h.src.Read(p)
}

func (h *heldBody) Close() error { return nil }
