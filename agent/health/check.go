// Package health checks whether a replica's process serves: an HTTP
// request, a TCP connection or a command, run once by a Checker, and
// a Monitor that repeats a check on an interval and reports when the
// replica becomes healthy or unhealthy.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// A Checker checks once whether something is healthy: it returns nil
// if it is, or an error saying why not. It gives up when ctx is done.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to a Checker.
type CheckFunc func(ctx context.Context) error

// Check returns f(ctx).
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// httpClient is shared by HTTP checks. It keeps no idle connections, so
// checks leave no sockets open between runs, ignores proxy settings of
// the environment, and does not follow redirects: a 3xx answer is the
// verdict.
var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{}).DialContext,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// HTTP is healthy when a GET of URL answers with status 2xx or 3xx.
type HTTP struct {
	URL string
}

// maxBody is how much of an answer's body is read: enough for an error
// message, and little enough that a check stays cheap.
const maxBody = 4 << 10

// Check implements Checker.
func (h HTTP) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "drover-health")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return nil
	}
	return fmt.Errorf("GET %s: %s%s", h.URL, resp.Status, excerpt(body))
}

// TCP is healthy when a TCP connection to Addr (host:port) opens.
type TCP struct {
	Addr string
}

// Check implements Checker.
func (c TCP) Check(ctx context.Context) error {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Exec is healthy when its command exits with status 0. The command
// runs without a shell, in a process group of its own that is killed
// when the check ends, so a check that hangs leaves nothing behind.
type Exec struct {
	// Argv is the command and its arguments. A command without a slash
	// is looked up in the agent's PATH.
	Argv []string
	// Env is the complete environment; the agent's is never passed on.
	Env []string
	// Dir is the working directory; the agent's when empty.
	Dir string
	// Credential runs the command as another user when not nil.
	Credential *syscall.Credential
}

// Check implements Checker.
func (e Exec) Check(ctx context.Context) error {
	if len(e.Argv) == 0 {
		return errors.New("exec check: empty command")
	}
	// Output goes to a pipe as files, not through copying goroutines of
	// os/exec, so that Wait does not wait for whoever else holds it.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, e.Argv[0], e.Argv[1:]...)
	cmd.Env = e.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = e.Dir
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: e.Credential}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Start()
	w.Close()
	if err != nil {
		return err
	}
	out := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, maxBody))
		io.Copy(io.Discard, r) // keep the command from blocking on a full pipe
		out <- b
	}()
	err = cmd.Wait()
	// Whatever the command left running goes with it. Until they are
	// gone the group ID is in use, so it names no other processes.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	// Something that left the group may hold the pipe; do not wait for it.
	r.SetReadDeadline(time.Now().Add(time.Second))
	output := <-out
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: %w%s", e.Argv[0], err, excerpt(output))
}

// excerpt returns the start of b as the end of an error message.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" {
		return ""
	}
	const n = 200
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "..."
	}
	return ": " + s
}
