package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/proctest"
	"github.com/drover-dev/drover/internal/testwait"
)

// The test binary doubles as the command of exec checks: run with
// helperEnv set, it acts as the command named by its value.
const helperEnv = "DROVER_HEALTH_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(mode string) {
	switch mode {
	case "pass":
	case "fail":
		fmt.Println("database\nunreachable")
		os.Exit(1)
	case "env": // pass only with exactly the environment of the test
		if os.Getenv("WANT") != "yes" || len(os.Environ()) != 3 {
			fmt.Println(os.Environ())
			os.Exit(1)
		}
	case "hang": // start a grandchild, tell its PID, and hang
		cmd := exec.Command(os.Args[0])
		cmd.Env = []string{helperEnv + "=hang-child"}
		if err := cmd.Start(); err != nil {
			os.Exit(1)
		}
		os.WriteFile(os.Getenv("PIDFILE"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
		fallthrough
	case "hang-child":
		for {
			time.Sleep(time.Hour)
		}
	}
}

// helper returns an Exec check of helper mode.
func helper(t *testing.T, mode string, env ...string) Exec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Spare the command the race detector's 1s sleep at exit.
	env = append([]string{helperEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}, env...)
	return Exec{Argv: []string{exe}, Env: env}
}

// check runs c with a timeout.
func check(c Checker, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Check(ctx)
}

func TestHTTP(t *testing.T) {
	var redirected atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database unreachable", http.StatusInternalServerError)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		redirected.Store(true)
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		path    string
		wantErr string // empty when healthy
	}{
		{"/ok", ""},
		{"/moved", ""},
		{"/fail", "500 Internal Server Error: database unreachable"},
		{"/missing", "404 Not Found"},
		{"/slow", "deadline exceeded"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := check(HTTP{URL: srv.URL + tc.path}, 200*time.Millisecond)
			if tc.wantErr == "" && err != nil {
				t.Errorf("Check = %v, want healthy", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Check = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	if redirected.Load() {
		t.Error("the check followed a redirect")
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := check(TCP{Addr: ln.Addr().String()}, time.Second); err != nil {
		t.Errorf("Check of a listening port = %v", err)
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	if err := check(TCP{Addr: addr}, time.Second); err == nil {
		t.Error("Check of a closed port passed")
	}
}

func TestExec(t *testing.T) {
	if err := check(helper(t, "pass"), 10*time.Second); err != nil {
		t.Errorf("passing command: %v", err)
	}
	err := check(helper(t, "fail"), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exit status 1: database unreachable") {
		t.Errorf("failing command: %v, want exit status and output", err)
	}
	if err := check(helper(t, "env", "WANT=yes"), 10*time.Second); err != nil {
		t.Errorf("command with its own environment: %v", err)
	}
	if err := check(Exec{Argv: []string{filepath.Join(t.TempDir(), "missing")}}, time.Second); err == nil {
		t.Error("missing command passed")
	}
	if err := check(Exec{}, time.Second); err == nil {
		t.Error("empty command passed")
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	err := check(helper(t, "hang", "PIDFILE="+pidfile), time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging command: %v, want deadline exceeded", err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the command did not start its child: %v", err)
	}
	pid, _ := strconv.Atoi(string(b))
	testwait.Eventually(t, 10*time.Second, "the command's child to end with the check", func() error {
		if proctest.Alive(pid) {
			return fmt.Errorf("child %d alive", pid)
		}
		return nil
	})
}
