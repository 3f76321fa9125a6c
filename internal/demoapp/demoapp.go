// Package demoapp is the demo workload bundled in the drover binary as the
// hidden subcommand "drover demo-app". `drover dev` runs it as its demo
// instance, and the multi-process tests use it as a workload that can be told
// to misbehave: fail its health check, crash, start slowly, ignore SIGTERM,
// leave a child process behind or hog memory.
//
// Every behaviour has a flag and an environment variable, so that an instance
// spec can set it through "env" as well as through "command". A flag wins
// over its variable.
//
//	flag             variable              meaning
//	-listen ADDR     PORT                  listen address (default 127.0.0.1:$PORT, or a free port when PORT is unset)
//	-addr-file F     DEMO_ADDR_FILE        write the address actually listened on to F once listening
//	-fail-health     DEMO_FAIL_HEALTH=1    /healthz answers 500 from the start
//	-crash-after D   DEMO_CRASH_AFTER      exit with code 3 after D
//	-start-delay D   DEMO_START_DELAY      sleep D before listening
//	-ignore-sigterm  DEMO_IGNORE_SIGTERM=1 ignore SIGTERM; only SIGKILL (or SIGINT) stops it
//	-spawn-child     DEMO_SPAWN_CHILD=1    start a sleeping child process of itself
//	-hog-memory MB   DEMO_HOG_MEMORY       allocate and touch MB mebibytes, then serve
//	-tick D          DEMO_TICK             print a line every D
//	-tcp-only        DEMO_TCP_ONLY=1       accept TCP connections without speaking HTTP
//
// HTTP endpoints: GET / (an HTML page naming the replica), GET /healthz (200
// "ok", or 500 while failing), GET /info (JSON: pid, child pid, address,
// health), POST /fail and POST /recover (flip the health answer), POST /crash
// (exit with code 3 at once), POST /echo (answers the body), GET /request
// (JSON: the request as it arrived, headers and host), GET /stream?n=&every=
// (n lines, flushed one by one) and GET /ws (a WebSocket echo).
//
// It prints "listening on ADDR" once it listens, one line per request and one
// per tick, all to stdout, so that log streaming can be tested.
package demoapp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Exit codes of Main.
const (
	ExitOK    = 0 // stopped by a signal, or the listener closed
	ExitError = 1 // could not listen or serve
	ExitUsage = 2 // bad flags or environment
	ExitCrash = 3 // asked to crash by -crash-after or POST /crash
)

// childEnv marks the sleeping child started by -spawn-child: Main run with it
// set does nothing but sleep.
const childEnv = "DEMO_SLEEPING_CHILD"

// shutdownTimeout bounds the graceful shutdown on SIGTERM or SIGINT.
const shutdownTimeout = 5 * time.Second

// config is what the flags and environment ask for.
type config struct {
	listen        string
	addrFile      string
	failHealth    bool
	crashAfter    time.Duration
	startDelay    time.Duration
	ignoreSIGTERM bool
	spawnChild    bool
	hogMemoryMB   int
	tick          time.Duration
	tcpOnly       bool
}

// Main runs the demo app with args (without the program or subcommand name)
// until SIGTERM or SIGINT, a crash, or a fatal error, and returns the process
// exit code: one of ExitOK, ExitError, ExitUsage or ExitCrash. It is meant to
// be the whole of a process: it installs signal handlers and may start a
// child process of os.Executable() with the same arguments.
func Main(args []string) int {
	if os.Getenv(childEnv) == "1" {
		return sleepForever()
	}
	cfg, err := parseConfig(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo-app: %v\n", err)
		return ExitUsage
	}
	stopSignals := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	if cfg.ignoreSIGTERM {
		signal.Ignore(syscall.SIGTERM)
		stopSignals = stopSignals[:1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()

	logger := log.New(os.Stdout, "", 0)
	childPID := 0
	if cfg.spawnChild {
		if childPID, err = spawnChild(cfg, logger); err != nil {
			fmt.Fprintf(os.Stderr, "demo-app: %v\n", err)
			return ExitError
		}
	}
	return run(ctx, cfg, logger, childPID)
}

// parseConfig reads the environment (through getenv) for defaults, then args.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	envErr := func(name string, err error) error {
		return fmt.Errorf("environment variable %s=%q: %w", name, getenv(name), err)
	}
	var err error
	if cfg.failHealth, err = envBool(getenv, "DEMO_FAIL_HEALTH"); err != nil {
		return cfg, envErr("DEMO_FAIL_HEALTH", err)
	}
	if cfg.ignoreSIGTERM, err = envBool(getenv, "DEMO_IGNORE_SIGTERM"); err != nil {
		return cfg, envErr("DEMO_IGNORE_SIGTERM", err)
	}
	if cfg.spawnChild, err = envBool(getenv, "DEMO_SPAWN_CHILD"); err != nil {
		return cfg, envErr("DEMO_SPAWN_CHILD", err)
	}
	if cfg.tcpOnly, err = envBool(getenv, "DEMO_TCP_ONLY"); err != nil {
		return cfg, envErr("DEMO_TCP_ONLY", err)
	}
	if cfg.crashAfter, err = envDuration(getenv, "DEMO_CRASH_AFTER"); err != nil {
		return cfg, envErr("DEMO_CRASH_AFTER", err)
	}
	if cfg.startDelay, err = envDuration(getenv, "DEMO_START_DELAY"); err != nil {
		return cfg, envErr("DEMO_START_DELAY", err)
	}
	if cfg.tick, err = envDuration(getenv, "DEMO_TICK"); err != nil {
		return cfg, envErr("DEMO_TICK", err)
	}
	if v := getenv("DEMO_HOG_MEMORY"); v != "" {
		if cfg.hogMemoryMB, err = strconv.Atoi(v); err != nil {
			return cfg, envErr("DEMO_HOG_MEMORY", err)
		}
	}
	cfg.addrFile = getenv("DEMO_ADDR_FILE")
	cfg.listen = "127.0.0.1:0"
	if port := getenv("PORT"); port != "" {
		cfg.listen = net.JoinHostPort("127.0.0.1", port)
	}

	fs := flag.NewFlagSet("demo-app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", cfg.listen, "`address` to listen on")
	fs.StringVar(&cfg.addrFile, "addr-file", cfg.addrFile, "write the address listened on to this `file`")
	fs.BoolVar(&cfg.failHealth, "fail-health", cfg.failHealth, "answer /healthz with 500 until POST /recover")
	fs.DurationVar(&cfg.crashAfter, "crash-after", cfg.crashAfter, "exit with code 3 after this `duration`")
	fs.DurationVar(&cfg.startDelay, "start-delay", cfg.startDelay, "sleep this `duration` before listening")
	fs.BoolVar(&cfg.ignoreSIGTERM, "ignore-sigterm", cfg.ignoreSIGTERM, "ignore SIGTERM")
	fs.BoolVar(&cfg.spawnChild, "spawn-child", cfg.spawnChild, "start a sleeping child process")
	fs.IntVar(&cfg.hogMemoryMB, "hog-memory", cfg.hogMemoryMB, "allocate and touch this many `MB`")
	fs.DurationVar(&cfg.tick, "tick", cfg.tick, "print a line every `duration` (0: never)")
	fs.BoolVar(&cfg.tcpOnly, "tcp-only", cfg.tcpOnly, "accept TCP connections without HTTP")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.hogMemoryMB < 0 || cfg.crashAfter < 0 || cfg.startDelay < 0 || cfg.tick < 0 {
		return cfg, errors.New("-hog-memory, -crash-after, -start-delay and -tick must not be negative")
	}
	return cfg, nil
}

func envBool(getenv func(string) string, name string) (bool, error) {
	v := getenv(name)
	if v == "" {
		return false, nil
	}
	return strconv.ParseBool(v)
}

func envDuration(getenv func(string) string, name string) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	return time.ParseDuration(v)
}

// run serves until ctx ends (ExitOK), a crash is due (ExitCrash), or serving
// fails (ExitError). childPID is reported by GET /info.
func run(ctx context.Context, cfg config, logger *log.Logger, childPID int) int {
	// The crash clock starts with the process, not with the listener, so a
	// crash can be due during a slow start.
	crash := make(chan string, 1)
	if cfg.crashAfter > 0 {
		t := time.AfterFunc(cfg.crashAfter, func() {
			select {
			case crash <- fmt.Sprintf("crashing after %s", cfg.crashAfter):
			default: // a crash is already due
			}
		})
		defer t.Stop()
	}

	if cfg.hogMemoryMB > 0 {
		hog := hogMemory(cfg.hogMemoryMB)
		defer runtime.KeepAlive(hog) // resident until we exit
		logger.Printf("allocated and touched %d MB", cfg.hogMemoryMB)
	}

	if cfg.startDelay > 0 {
		logger.Printf("starting in %s", cfg.startDelay)
		select {
		case <-time.After(cfg.startDelay):
		case <-ctx.Done():
			logger.Printf("stopped during start delay")
			return ExitOK
		case msg := <-crash:
			logger.Print(msg)
			return ExitCrash
		}
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		logger.Printf("listen: %v", err)
		return ExitError
	}
	addr := ln.Addr().String()
	if cfg.addrFile != "" {
		if err := writeFileAtomic(cfg.addrFile, addr+"\n"); err != nil {
			ln.Close()
			logger.Printf("write address file: %v", err)
			return ExitError
		}
	}
	logger.Printf("listening on %s", addr)

	if cfg.tick > 0 {
		stopTick := make(chan struct{})
		defer close(stopTick)
		go ticker(cfg.tick, logger, stopTick)
	}

	if cfg.tcpOnly {
		return serveTCP(ctx, ln, logger, crash)
	}

	a := &app{addr: addr, logger: logger, crash: crash, childPID: childPID}
	a.failing.Store(cfg.failHealth)
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
		logger.Printf("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-served
		logger.Printf("stopped")
		return ExitOK
	case msg := <-crash:
		logger.Print(msg)
		srv.Close()
		<-served
		return ExitCrash
	case err := <-served:
		logger.Printf("serve: %v", err)
		return ExitError
	}
}

// app holds the HTTP handlers' state.
type app struct {
	addr     string
	logger   *log.Logger
	crash    chan<- string
	childPID int
	failing  atomic.Bool
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.index)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /info", a.info)
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		a.failing.Store(true)
		io.WriteString(w, "health now failing\n")
	})
	mux.HandleFunc("POST /recover", func(w http.ResponseWriter, r *http.Request) {
		a.failing.Store(false)
		io.WriteString(w, "health now ok\n")
	})
	mux.HandleFunc("POST /crash", func(w http.ResponseWriter, r *http.Request) {
		// The whole answer is on the wire before we exit: a known length, so
		// that the flush does not leave a chunked body open.
		const msg = "crashing\n"
		w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
		w.Header().Set("Connection", "close")
		io.WriteString(w, msg)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case a.crash <- "crashing on request":
		default: // a crash is already due
		}
	})
	mux.HandleFunc("POST /echo", a.echo)
	mux.HandleFunc("GET /request", a.request)
	mux.HandleFunc("GET /stream", a.stream)
	mux.HandleFunc("GET /ws", a.websocket)
	return a.logRequests(mux)
}

// maxEchoBytes bounds what POST /echo and /ws messages echo.
const maxEchoBytes = 1 << 20

// echo answers a POST's body.
func (a *app) echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(body)
}

// Request is the JSON answer of GET /request: the request as it arrived.
type Request struct {
	Method  string      `json:"method"`
	Host    string      `json:"host"`
	Remote  string      `json:"remote"`
	Header  http.Header `json:"header"`
	Replica string      `json:"replica"`
}

func (a *app) request(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Request{Method: r.Method, Host: r.Host, Remote: r.RemoteAddr, Header: r.Header, Replica: os.Getenv("DROVER_REPLICA")})
}

// stream answers ?n= lines (default 5, at most 1000), one every ?every=
// (default 100ms), each flushed as it is written.
func (a *app) stream(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(cmp.Or(r.URL.Query().Get("n"), "5"))
	if err != nil || n < 1 || n > 1000 {
		http.Error(w, "n: want 1 to 1000", http.StatusBadRequest)
		return
	}
	every, err := time.ParseDuration(cmp.Or(r.URL.Query().Get("every"), "100ms"))
	if err != nil || every < 0 || every > time.Minute {
		http.Error(w, "every: want a duration up to 1m", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rc := http.NewResponseController(w)
	for i := 1; i <= n; i++ {
		if i > 1 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(every):
			}
		}
		fmt.Fprintf(w, "line %d of %d at %s\n", i, n, time.Now().UTC().Format(time.RFC3339Nano))
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// websocket echoes every message of a WebSocket until the client closes it.
func (a *app) websocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the client
	}
	defer c.CloseNow()
	c.SetReadLimit(maxEchoBytes)
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}

// statusRecorder remembers the status code a handler wrote, for the log line.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach Flush and Hijack (WebSockets).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (a *app) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r)
		a.logger.Printf("%s %s %d %s from %s", r.Method, r.URL.Path, rec.status,
			time.Since(start).Round(time.Microsecond), r.RemoteAddr)
	})
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	if a.failing.Load() {
		http.Error(w, "failing", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, "ok\n")
}

// Info is the JSON answer of GET /info.
type Info struct {
	PID      int    `json:"pid"`
	ChildPID int    `json:"child_pid,omitempty"`
	Addr     string `json:"addr"`
	Healthy  bool   `json:"healthy"`
	Tenant   string `json:"tenant"`
	Instance string `json:"instance"`
	Replica  string `json:"replica"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
}

func (a *app) currentInfo() Info {
	host, _ := os.Hostname()
	return Info{
		PID:      os.Getpid(),
		ChildPID: a.childPID,
		Addr:     a.addr,
		Healthy:  !a.failing.Load(),
		Tenant:   os.Getenv("DROVER_TENANT"),
		Instance: os.Getenv("DROVER_INSTANCE"),
		Replica:  os.Getenv("DROVER_REPLICA"),
		Version:  os.Getenv("DROVER_VERSION"),
		Hostname: host,
	}
}

func (a *app) info(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a.currentInfo())
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Drover demo app</title></head>
<body>
<h1>Drover demo app</h1>
<table>
<tr><th>tenant</th><td>{{.Tenant}}</td></tr>
<tr><th>instance</th><td>{{.Instance}}</td></tr>
<tr><th>replica</th><td>{{.Replica}}</td></tr>
<tr><th>version</th><td>{{.Version}}</td></tr>
<tr><th>hostname</th><td>{{.Hostname}}</td></tr>
<tr><th>pid</th><td>{{.PID}}</td></tr>
<tr><th>health</th><td>{{if .Healthy}}ok{{else}}failing{{end}}</td></tr>
</table>
</body></html>
`))

func (a *app) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexPage.Execute(w, a.currentInfo()); err != nil {
		a.logger.Printf("render index: %v", err)
	}
}

// serveTCP accepts connections, writes "ok" and closes them, until ctx ends
// or a crash is due.
func serveTCP(ctx context.Context, ln net.Listener, logger *log.Logger, crash <-chan string) int {
	accepted := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			logger.Printf("tcp connection from %s", c.RemoteAddr())
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "ok\n")
			c.Close()
		}
	}()
	code := ExitOK
	select {
	case <-ctx.Done():
		logger.Printf("stopped")
	case msg := <-crash:
		logger.Print(msg)
		code = ExitCrash
	case err := <-accepted:
		logger.Printf("accept: %v", err)
		return ExitError
	}
	ln.Close()
	<-accepted
	return code
}

func ticker(every time.Duration, logger *log.Logger, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-t.C:
			logger.Printf("tick %d", n)
		case <-stop:
			return
		}
	}
}

// hogMemory allocates mb mebibytes and writes to every page, so that the
// memory is resident and counts against a cgroup limit.
func hogMemory(mb int) []byte {
	b := make([]byte, mb<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

// spawnChild starts a child process of os.Executable() with the same
// arguments and childEnv set, so that it only sleeps. It stays in our
// process group and is deliberately not stopped when we exit: a supervisor
// that stops only the leader leaves it behind, which is what tests look for.
func spawnChild(cfg config, logger *log.Logger) (pid int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("spawn child: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if cfg.ignoreSIGTERM {
		cmd.Env = append(cmd.Env, "DEMO_IGNORE_SIGTERM=1")
	}
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("spawn child: %w", err)
	}
	logger.Printf("spawned child pid %d", cmd.Process.Pid)
	go cmd.Wait() // reap it if it dies while we live
	return cmd.Process.Pid, nil
}

// sleepForever is the whole life of the child started by -spawn-child.
func sleepForever() int {
	if ok, _ := envBool(os.Getenv, "DEMO_IGNORE_SIGTERM"); ok {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Printf("child pid %d sleeping\n", os.Getpid())
	for {
		time.Sleep(time.Hour) // a bare select{} would be reported as a deadlock
	}
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so a reader polling for path never sees it half written.
func writeFileAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
