// Package bufpool lends reverse proxies their copy buffers
// (httputil.BufferPool), which they would otherwise allocate, 32 KiB at a
// time, for every answer they copy.
package bufpool

import "sync"

// Size is the size of the buffers lent.
const Size = 32 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, Size); return &b }}

// Pool is an httputil.BufferPool backed by one process-wide sync.Pool.
type Pool struct{}

// Get lends a buffer of Size bytes.
func (Pool) Get() []byte { return *buffers.Get().(*[]byte) }

// Put gives a buffer back.
func (Pool) Put(b []byte) { buffers.Put(&b) }
