package gateway

import (
	"context"
	"io"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/protocol"
)

// StreamLogs asks a node's agent for a replica's output and copies it to w,
// calling flush after each chunk, until the agent ends the stream or ctx
// ends.
func (g *Gateway) StreamLogs(ctx context.Context, node string, req protocol.LogRequest, w io.Writer, flush func()) error {
	s := g.session(node)
	if s == nil {
		return protocol.Errorf(protocol.CodeUnavailable, "node %s is not connected; its logs cannot be read now", node)
	}
	req.Stream = secret.New()[:16]
	l := s.openLog(req.Stream)
	ended := false // by the agent: EOF or an error
	defer func() {
		s.endLog(req.Stream)
		// Whatever else ended it (ctx, a failed write, a reader too slow
		// to keep up), tell the agent: it would follow the log for as long
		// as the session lasts, and every chunk be dropped here.
		if !ended {
			_ = s.send(protocol.MsgLogs, protocol.LogRequest{Stream: req.Stream, Cancel: true})
		}
	}()
	if err := s.send(protocol.MsgLogs, req); err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "ask node %s for logs: %v", node, err)
	}
	wrote := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.done:
			if wrote {
				return nil
			}
			return protocol.Errorf(protocol.CodeUnavailable, "node %s disconnected, or the stream fell too far behind", node)
		case d := <-l.data:
			ended = d.Error != "" || d.EOF
			if d.Error != "" {
				if wrote {
					return nil
				}
				return protocol.Errorf(protocol.CodeNotFound, "%s", d.Error)
			}
			if d.Data != "" {
				if _, err := io.WriteString(w, d.Data); err != nil {
					return nil
				}
				wrote = true
				flush()
			}
			if d.EOF {
				return nil
			}
		}
	}
}
