package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newInstanceCmd) }

func newInstanceCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "instance",
		Short: "Create, change, follow and remove the instances of tenants",
		Long: `Instances are named TENANT/NAME on the command line.

An instance file is the instance document of the API in YAML or JSON, with an
optional "tenant" key saying where to create it:

  tenant: acme
  name: crm
  environment: production
  replicas: 2
  spec:
    version: "1.4.2"
    command: ["/opt/crm/bin/crm", "--listen", "127.0.0.1:${PORT}"]
    ports: [http]
    resources: {cpu_millis: 500, memory_mb: 256}
    health: {type: http, port: http, path: /healthz, interval: 2s}`,
		Example: `  drover instance create -f crm.yaml
  drover instance list -tenant acme
  drover instance status acme/crm
  drover instance scale acme/crm 3`,
	},
		newInstanceCreateCmd(), newInstanceListCmd(), newInstanceStatusCmd(), newInstanceUpdateCmd(),
		newInstanceScaleCmd(), newInstanceLogsCmd(), newInstanceDeleteCmd(), newInstancePromoteCmd(),
		newInstanceEventsCmd(), newInstanceHistoryCmd(), newInstanceRollbackCmd())
	for _, action := range []string{client.ActionStop, client.ActionStart, client.ActionRestart} {
		cmd.AddCommand(newInstanceActionCmd(action))
	}
	return cmd
}

// waitFlags are the flags of the verbs that follow a deployment.
type waitFlags struct {
	file    string
	detach  bool
	timeout time.Duration
}

func (f *waitFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&f.file, "file", "f", "", "instance file, YAML or JSON (- for standard input)")
	fs.BoolVar(&f.detach, "detach", false, "return once the server accepted the change, without waiting for the deployment")
	fs.DurationVar(&f.timeout, "timeout", DefaultWaitTimeout, "how long to wait for the deployment to be healthy")
}

func (f *waitFlags) check() error {
	if f.file == "" {
		return usageError{errors.New("-f FILE is required")}
	}
	if f.timeout <= 0 {
		return usageError{fmt.Errorf("-timeout %s: want a positive duration", f.timeout)}
	}
	return nil
}

// afterChange ends create and update: it prints the instance when
// detached, or follows its deployment.
func (c *cli) afterChange(in *protocol.Instance, verbDone string, f *waitFlags) error {
	if f.detach {
		return c.show(in, func(w io.Writer) {
			fmt.Fprintf(w, "%s instance %s, version %d; follow it with: drover instance status %s\n", verbDone, in.ID, in.Version, in.ID)
		})
	}
	if !c.json {
		fmt.Fprintf(c.out, "%s instance %s, version %d; waiting for it to be healthy\n", verbDone, in.ID, in.Version)
	}
	return c.waitRollout(in.Tenant, in.Name, in.Version, f.timeout)
}

func newInstanceCreateCmd() *cobra.Command {
	var f waitFlags
	var tenant string
	cmd := &cobra.Command{
		Use:   "create -f FILE [-tenant T] [-detach]",
		Short: "Create an instance and wait until it is healthy",
		Long: `Create an instance from a YAML or JSON file, then follow its deployment until
every replica is healthy, showing the replicas placed, running and healthy.

The tenant is -tenant, or the file's "tenant" key; when both are given they
must agree. The command fails (exit 1) with the replicas' messages and the
last events when the deployment fails or -timeout passes; the deployment
itself goes on. -detach returns at once.`,
		Example: `  drover instance create -f crm.yaml
  drover instance create -f crm.json -tenant acme -timeout 10m
  drover instance create -f crm.yaml -detach -o json`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if tenant != "" {
				if err := protocol.ValidateName("tenant", tenant); err != nil {
					return usageError{fmt.Errorf("-tenant: %w", err)}
				}
			}
			req, fileTenant, err := readInstanceFile(f.file, c.in)
			if err != nil {
				return err
			}
			switch {
			case tenant == "" && fileTenant == "":
				return usageError{fmt.Errorf("no tenant: give -tenant T or a tenant key in %s", f.file)}
			case tenant == "":
				tenant = fileTenant
			case fileTenant != "" && fileTenant != tenant:
				return usageError{fmt.Errorf("-tenant %s differs from the tenant %s of %s", tenant, fileTenant, f.file)}
			}
			in, _, err := c.api.CreateInstance(c.ctx, tenant, req)
			if err != nil {
				return err
			}
			return c.afterChange(in, "Created", &f)
		}),
	}
	f.add(cmd)
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant to create the instance in (default: the file's tenant key)")
	return cmd
}

func newInstanceUpdateCmd() *cobra.Command {
	var f waitFlags
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:   "update TENANT/NAME -f FILE",
		Short: "Give an instance a new spec and wait for its deployment",
		Long: `Send a new instance document: the instance gets a new version and a deployment
rolls it out. The command waits like create until the replicas of the new
version are healthy and the deployment is over. A file saved with
"drover instance status T/NAME -o json | jq .instance" can be edited and sent
back; secrets shown as "(secret)" keep their value.`,
		Example: `  drover instance update acme/crm -f crm.yaml
  drover instance update acme/crm -f crm.yaml -if-version 4 -detach`,
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			if err := f.check(); err != nil {
				return err
			}
			req, fileTenant, err := readInstanceFile(f.file, c.in)
			if err != nil {
				return err
			}
			if fileTenant != "" && fileTenant != tenant {
				return usageError{fmt.Errorf("%s names tenant %s, not %s", f.file, fileTenant, tenant)}
			}
			in, _, err := c.api.UpdateInstance(c.ctx, tenant, name, req, ifVersion)
			if err != nil {
				return err
			}
			return c.afterChange(in, "Updated", &f)
		}),
	}
	f.add(cmd)
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "fail with a conflict unless the instance is at this version")
	return cmd
}

func newInstanceListCmd() *cobra.Command {
	var tenant, env, st string
	cmd := &cobra.Command{
		Use:   "list [-tenant T] [-env E] [-state S]",
		Short: "List instances, of one tenant or of the fleet",
		Example: `  drover instance list
  drover instance list -state failed
  drover instance list -tenant acme -env production -o json`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			if st != "" && !slices.Contains(instanceStates, st) {
				return usageError{fmt.Errorf("-state %q: want one of %s", st, strings.Join(instanceStates, ", "))}
			}
			var ins []*protocol.Instance
			var err error
			if tenant != "" {
				// The tenant's own path: tenant tokens may read it.
				ins, _, err = c.api.TenantInstances(c.ctx, tenant, nil)
				kept := ins[:0]
				for _, in := range ins {
					if (env == "" || in.Environment == env) && (st == "" || in.Status != nil && in.Status.State == st) {
						kept = append(kept, in)
					}
				}
				ins = kept
			} else {
				ins, _, err = c.api.Instances(c.ctx, client.InstanceFilter{Environment: env, State: st}, nil)
			}
			if err != nil {
				return err
			}
			if ins == nil {
				ins = []*protocol.Instance{}
			}
			return c.show(ins, func(w io.Writer) { instancesTable(w, ins) })
		}),
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's instances")
	cmd.Flags().StringVar(&env, "env", "", "only instances of this environment")
	cmd.Flags().StringVar(&st, "state", "", "only instances in this state: "+strings.Join(instanceStates, ", "))
	return cmd
}

// instanceStates are the states an instance's status may be in.
var instanceStates = []string{protocol.InstanceRunning, protocol.InstanceDeploying, protocol.InstanceDegraded,
	protocol.InstanceStopped, protocol.InstanceFailed}

// instanceStatus is what instance status shows; -o json prints it whole.
type instanceStatus struct {
	Instance *protocol.Instance  `json:"instance"`
	Replicas []*protocol.Replica `json:"replicas"`
	Events   []*protocol.Event   `json:"events"`
}

// statusEvents is how many recent events instance status shows in a table.
const statusEvents = 10

func newInstanceStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status TENANT/NAME",
		Short: "Show an instance: its replicas, health, deployment and recent events",
		Long: `Show an instance: its version, state, replica counts and deployment, then
its replicas (node, state, ports, restarts, message) and its recent events.
With -o json: {"instance": ..., "replicas": [...], "events": [...]}.`,
		Example: `  drover instance status acme/crm
  drover instance status acme/crm -o json | jq '.replicas[] | select(.state != "healthy")'`,
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			var st instanceStatus
			var err error
			if st.Instance, _, err = c.api.Instance(c.ctx, tenant, name, nil); err != nil {
				return err
			}
			if st.Replicas, _, err = c.api.Replicas(c.ctx, tenant, name, nil); err != nil {
				return err
			}
			if st.Events, _, err = c.api.Events(c.ctx, tenant, name, nil); err != nil {
				return err
			}
			return c.show(st, func(w io.Writer) { instanceStatusTable(w, &st, c.now()) })
		}),
	}
}

func instanceStatusTable(w io.Writer, st *instanceStatus, now time.Time) {
	in := st.Instance
	replicas := ""
	if s := in.Status; s != nil {
		r := s.Replicas
		replicas = fmt.Sprintf("%d/%d healthy, %d running, %d pending, %d failed", r.Healthy, r.Desired, r.Running, r.Pending, r.Failed)
	}
	dep := ""
	if d := in.Deployment; d != nil {
		dep = fmt.Sprintf("%s: version %d -> %d, %s", d.ID, d.FromVersion, d.ToVersion, d.State)
		if d.State != protocol.DeploymentRunning {
			dep = "last: " + dep // over: it says how the instance got here, not how it is
		}
		if d.Rollback {
			dep += " (rollback)"
		}
		if a := age(d.StartedAt, now); a != "" {
			dep += ", started " + a + " ago"
		}
		if d.Message != "" {
			dep += ": " + d.Message
		}
	}
	state := instanceState(in)
	if in.Stopped {
		state += " (stopped by request)"
	}
	product := ""
	if in.Product != "" {
		product = in.Product + " " + in.Release
		if in.Channel != "" {
			product += " (channel " + in.Channel + ")"
		}
		if in.Pinned {
			product += ", pinned"
		}
	}
	fields(w, "ID", in.ID, "Environment", in.Environment, "Plan", in.Plan, "Product", product,
		"Version", instanceVersion(in), "State", state, "Replicas", replicas, "Deployment", dep,
		"Endpoints", strings.Join(in.Endpoints, " "))
	fmt.Fprintln(w)
	// The live set first; replicas that ended are history, shown apart.
	var live, ended []*protocol.Replica
	for _, r := range st.Replicas {
		if r.Ended() {
			ended = append(ended, r)
		} else {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		fmt.Fprintln(w, "No live replicas.")
	} else {
		replicasTable(w, live, now)
	}
	if len(ended) > 0 {
		fmt.Fprintf(w, "\nEnded (%s, kept for their exit messages):\n", count(len(ended), "replica"))
		replicasTable(w, ended, now)
	}
	if len(st.Events) > 0 {
		evs := st.Events
		if len(evs) > statusEvents {
			evs = evs[len(evs)-statusEvents:]
		}
		fmt.Fprintln(w, "\nRecent events:")
		eventsTable(w, evs)
	}
}

// lifecycleWait are the flags of the verbs that may follow the change
// they make: scale, stop, start, restart.
type lifecycleWait struct {
	wait    bool
	timeout time.Duration
}

func (f *lifecycleWait) add(cmd *cobra.Command, until string) {
	cmd.Flags().BoolVar(&f.wait, "wait", false, "show the replicas' progress and return once "+until)
	cmd.Flags().DurationVar(&f.timeout, "timeout", DefaultWaitTimeout, "with -wait, how long to wait")
}

func (f *lifecycleWait) check() error {
	if f.wait && f.timeout <= 0 {
		return usageError{fmt.Errorf("-timeout %s: want a positive duration", f.timeout)}
	}
	return nil
}

// lifecycleDone ends a lifecycle verb: it prints the instance, or with
// -wait follows it like create does.
func (c *cli) lifecycleDone(in *protocol.Instance, f *lifecycleWait, line string) error {
	if !f.wait {
		return c.show(in, func(w io.Writer) { fmt.Fprintln(w, line) })
	}
	if !c.json {
		fmt.Fprintln(c.out, line)
	}
	return c.waitRollout(in.Tenant, in.Name, in.Version, f.timeout)
}

func newInstanceScaleCmd() *cobra.Command {
	var f lifecycleWait
	cmd := &cobra.Command{
		Use:   "scale TENANT/NAME N [-wait]",
		Short: "Set the number of replicas of an instance",
		Long: `Set the number of replicas of an instance. With -wait, show the replicas'
progress and return once N replicas are healthy (or, for 0, none runs); the
command fails (exit 1) like create when they cannot be, or -timeout passes.`,
		Example: `  drover instance scale acme/crm 3
  drover instance scale acme/crm 3 -wait`,
		Args:              argsExactly("TENANT/NAME", "N"),
		ValidArgsFunction: completeInstances,
		RunE: verb(func(c *cli, args []string) error {
			tenant, name, err := parseInstanceArg(args[0])
			if err != nil {
				return err
			}
			n, err := parseCount(args[1])
			if err != nil {
				return err
			}
			if err := f.check(); err != nil {
				return err
			}
			in, _, err := c.api.ScaleInstance(c.ctx, tenant, name, n)
			if err != nil {
				return err
			}
			return c.lifecycleDone(in, &f, fmt.Sprintf("Scaled %s to %s (%s)", in.ID, count(in.Replicas, "replica"), instanceState(in)))
		}),
	}
	f.add(cmd, "the replicas are healthy")
	return cmd
}

// actionDone words what a lifecycle action did.
var actionDone = map[string]string{
	client.ActionStop:    "Stopping",
	client.ActionStart:   "Starting",
	client.ActionRestart: "Restarting",
}

var actionHelp = map[string]string{
	client.ActionStop:    "Stop an instance's replicas; start brings them back",
	client.ActionStart:   "Start a stopped instance's replicas again",
	client.ActionRestart: "Replace an instance's replicas with new ones, a few at a time",
}

// confirmError words the API's demand for ?confirm=NAME as the command
// line's flag: the command to type again.
func confirmError(err error, verb, tenant, name string) error {
	var e *protocol.Error
	if !errors.As(err, &e) || e.Field != "confirm" {
		return err
	}
	id := protocol.InstanceID(tenant, name)
	return fmt.Errorf("%s is in a protected environment; to go ahead, repeat with the instance's name:\n  drover %s %s -confirm %s", id, verb, id, name)
}

// confirmHelp is the help of -confirm.
const confirmHelp = "the instance's name again: needed to stop or delete an instance of a protected environment"

// actionWaits says what -wait waits for after each lifecycle action.
var actionWaits = map[string]string{
	client.ActionStop:    "no replica runs",
	client.ActionStart:   "the replicas are healthy",
	client.ActionRestart: "new replicas are healthy",
}

func newInstanceActionCmd(action string) *cobra.Command {
	var confirm string
	var f lifecycleWait
	cmd := &cobra.Command{
		Use:               action + " TENANT/NAME [-wait]",
		Short:             actionHelp[action],
		Long:              actionHelp[action] + ". With -wait, show the replicas' progress and return once " + actionWaits[action] + ".",
		Example:           "  drover instance " + action + " acme/crm\n  drover instance " + action + " acme/crm -wait",
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			if err := f.check(); err != nil {
				return err
			}
			in, _, err := c.api.InstanceAction(c.ctx, tenant, name, action, confirm)
			if err != nil {
				return confirmError(err, "instance "+action, tenant, name)
			}
			return c.lifecycleDone(in, &f, fmt.Sprintf("%s %s (%s)", actionDone[action], in.ID, instanceState(in)))
		}),
	}
	f.add(cmd, actionWaits[action])
	if action == client.ActionStop {
		cmd.Flags().StringVar(&confirm, "confirm", "", confirmHelp)
	}
	return cmd
}

func newInstancePromoteCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "promote TENANT/NAME",
		Short:             "Promote a deployment's healthy canaries, so that the other replicas roll",
		Example:           "  drover instance promote acme/crm",
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			in, _, err := c.api.PromoteDeployment(c.ctx, tenant, name)
			if err != nil {
				return err
			}
			return c.show(in, func(w io.Writer) {
				fmt.Fprintf(w, "Promoted the deployment of %s (%s)\n", in.ID, instanceState(in))
			})
		}),
	}
}

func newInstanceDeleteCmd() *cobra.Command {
	var confirm string
	cmd := &cobra.Command{
		Use:               "delete TENANT/NAME",
		Short:             "Stop an instance and remove it",
		Example:           "  drover instance delete acme/crm\n  drover instance delete acme/crm -confirm crm   # in a protected environment",
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			m, err := c.api.DeleteInstance(c.ctx, tenant, name, confirm)
			if err != nil {
				return confirmError(err, "instance delete", tenant, name)
			}
			id := protocol.InstanceID(tenant, name)
			return c.show(deleted{ID: id, Deleted: true, Index: m.Index}, func(w io.Writer) {
				fmt.Fprintf(w, "Deleted instance %s\n", id)
			})
		}),
	}
	cmd.Flags().StringVar(&confirm, "confirm", "", confirmHelp)
	return cmd
}

func newInstanceLogsCmd() *cobra.Command {
	var o client.LogOptions
	cmd := &cobra.Command{
		Use:   "logs TENANT/NAME [-replica ID] [-f]",
		Short: "Print a replica's output, and follow the instance's with -f",
		Long: `Print the last lines of a replica's output (stdout and stderr) as its agent
keeps them. Without -replica the server picks a running replica of the
instance, or the last one that ran. A replica that ended prints its last
output while its node keeps it.

With -f the output is followed until interrupted. When the replica stops
(a restart, an update, a scale down, a crash) the command says so on
standard error and goes on with the instance's newest healthy replica; it
ends (exit 0) once the instance is stopped, scaled to 0 or deleted. With
-replica it follows that replica only, and ends when it stops.`,
		Example: `  drover instance logs acme/crm
  drover instance logs acme/crm -f
  drover instance logs acme/crm -replica 5f1c2a -tail 500 -f`,
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			if o.Tail < 0 {
				return usageError{fmt.Errorf("-tail %d: want 0 or more", o.Tail)}
			}
			if o.Replica != "" {
				id, err := c.replicaID(tenant, name, o.Replica)
				if err != nil {
					return err
				}
				o.Replica = id
			}
			if o.Follow {
				return c.api.FollowLogs(c.ctx, tenant, name, o, c.out, func(n client.LogNotice) {
					fmt.Fprintln(c.errw, logNoticeLine(n, tenant, name))
				})
			}
			s, err := c.api.Logs(c.ctx, tenant, name, o)
			if err != nil {
				return err
			}
			defer s.Close()
			if reps, _, err := c.api.Replicas(c.ctx, tenant, name, nil); err == nil {
				for _, r := range reps {
					if r.ID == s.Replica && r.Ended() {
						fmt.Fprintf(c.errw, "%s; its last output:\n", replicaEnded(r))
					}
				}
			}
			if _, err := io.Copy(c.out, s); err != nil && c.ctx.Err() == nil {
				return fmt.Errorf("log stream of %s: %w", protocol.InstanceID(tenant, name), err)
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Replica, "replica", "", "replica id, or a unique prefix of one (default: a running replica of the instance)")
	fs.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new output, of the instance's next replica when one stops, until interrupted")
	fs.IntVar(&o.Tail, "tail", 100, "lines of past output to print first (of each replica followed)")
	return cmd
}

// logNoticeLine words a change of the replica logs -f follows.
func logNoticeLine(n client.LogNotice, tenant, name string) string {
	var parts []string
	if n.Ended != nil {
		parts = append(parts, replicaEnded(n.Ended))
	}
	switch {
	case n.Reconnect:
		parts = append(parts, fmt.Sprintf("the log stream of replica %s ended while it runs; reconnecting", shortID(n.Next.ID)))
	case n.Next != nil:
		parts = append(parts, "following "+shortID(n.Next.ID))
	case n.Waiting:
		parts = append(parts, "waiting for a new replica of "+protocol.InstanceID(tenant, name))
	case n.Over != "":
		parts = append(parts, n.Over+": nothing more to follow")
	}
	return strings.Join(parts, "; ")
}

// replicaEnded says that a replica ended, and why: "replica 5f1c2a
// stopped (restarted)".
func replicaEnded(r *protocol.Replica) string {
	how := "stopped"
	if r.State == protocol.ReplicaFailed || r.State == protocol.ReplicaLost {
		how = r.State
	}
	why := r.StopReason
	if why == "" && r.Message != how {
		why = r.Message
	}
	if why == "" {
		return fmt.Sprintf("replica %s %s", shortID(r.ID), how)
	}
	return fmt.Sprintf("replica %s %s (%s)", shortID(r.ID), how, why)
}

// replicaID resolves a replica of an instance from its id or a unique
// prefix of it.
func (c *cli) replicaID(tenant, name, typed string) (string, error) {
	reps, _, err := c.api.Replicas(c.ctx, tenant, name, nil)
	if err != nil {
		return "", err
	}
	var found []string
	for _, r := range reps {
		if r.ID == typed {
			return r.ID, nil
		}
		if strings.HasPrefix(r.ID, typed) {
			found = append(found, r.ID)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", requestError{fmt.Sprintf("replica %q not found among the replicas of %s (drover instance status shows them)", typed, protocol.InstanceID(tenant, name))}
	}
	return "", requestError{fmt.Sprintf("%q names %d replicas of %s: %s; give more of the id", typed, len(found), protocol.InstanceID(tenant, name), strings.Join(found, ", "))}
}
