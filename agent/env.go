package agent

import (
	"sort"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/protocol"
)

// environment returns the variables of a replica's process: its spec's
// env, what Drover sets (PORT, PORT_<NAME>, DROVER_*), and its secrets.
func environment(a *protocol.AssignedReplica, ports map[string]int) map[string]string {
	env := variables(a, ports)
	for k, v := range a.Spec.Secrets {
		env[k] = v // validation keeps secrets off Drover's own names
	}
	return env
}

// variables are what ${VAR} in a command expands from: the spec's env and
// what Drover sets, never the secrets, which would otherwise be readable by
// every user of the host in /proc/PID/cmdline.
func variables(a *protocol.AssignedReplica, ports map[string]int) map[string]string {
	env := map[string]string{}
	for k, v := range a.Spec.Env {
		env[k] = v
	}
	for i, name := range a.Spec.Ports {
		p := strconv.Itoa(ports[name])
		if i == 0 {
			env["PORT"] = p
		}
		env["PORT_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = p
	}
	env["DROVER_TENANT"] = a.Tenant
	env["DROVER_INSTANCE"] = a.Instance
	env["DROVER_ENVIRONMENT"] = a.Environment
	env["DROVER_REPLICA"] = a.ID
	env["DROVER_VERSION"] = strconv.FormatUint(a.Version, 10)
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return env
}

// envList turns env into KEY=VALUE pairs in a stable order.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// expand replaces ${VAR} in each argument from env. Nothing else is
// interpreted: no shell, no globbing, no $VAR without braces. An unknown
// variable becomes empty, as in a shell.
func expand(argv []string, env map[string]string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		var b strings.Builder
		for {
			start := strings.Index(a, "${")
			if start < 0 {
				break
			}
			end := strings.IndexByte(a[start:], '}')
			if end < 0 {
				break
			}
			b.WriteString(a[:start])
			b.WriteString(env[a[start+2:start+end]])
			a = a[start+end+1:]
		}
		b.WriteString(a)
		out[i] = b.String()
	}
	return out
}
