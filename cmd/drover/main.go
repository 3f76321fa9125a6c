// Command drover is Drover's one binary: the server and agent daemons, the
// dev mode, and the CLI.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes (API.md).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageError marks an error as bad usage: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int { return execute(args, os.Stdout, os.Stderr) }

// execute runs the command line args with its output sent to stdout and
// stderr, and returns the exit code.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(normalizeArgs(args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stderr, "Error: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	}
	var ex exitError
	if errors.As(err, &ex) {
		if ex.msg != "" {
			fmt.Fprintln(stderr, ex.msg)
		}
		return ex.code
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return exitFailed
}

// exitError ends the command with a given code after printing msg.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

var cobraUsage = regexp.MustCompile(`^(unknown (command|flag|shorthand flag)|invalid argument|flag needs an argument|accepts |requires |bad flag syntax|required flag)`)

func isCobraUsage(err error) bool { return cobraUsage.MatchString(err.Error()) }

// longFlag matches "-name" and "-name=value" with a name of two or more
// characters: API.md writes long flags with one dash, as Go's flag package
// does; pflag wants two.
var longFlag = regexp.MustCompile(`^-[a-zA-Z][a-zA-Z0-9-]+(=.*)?$`)

// negativeArg finds a negative number in the parser's complaint about an
// unknown shorthand flag.
var negativeArg = regexp.MustCompile(`unknown shorthand flag: '\d' in (-\d+)$`)

func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if longFlag.MatchString(a) {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

// helpLongFlag is a long flag's name at the start of a help line, after
// its shorthand if it has one: "      --tenant string", "  -f, --file".
var helpLongFlag = regexp.MustCompile(`(?m)^(\s+(?:-\w, )?)--(\w)`)

// singleDashHelp lists the flags in help as the README and the examples
// write them, with one dash (normalizeArgs takes either): every line loses
// one character, so the columns stay aligned.
func singleDashHelp(root *cobra.Command) {
	cobra.AddTemplateFunc("singleDash", func(s string) string { return helpLongFlag.ReplaceAllString(s, "${1}-${2}") })
	t := root.UsageTemplate()
	for _, f := range []string{".LocalFlags.FlagUsages", ".InheritedFlags.FlagUsages"} {
		t = strings.ReplaceAll(t, f, f+" | singleDash")
	}
	root.SetUsageTemplate(t)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "drover",
		Short:         "Drover runs the instances of a SaaS product for many tenants on hosts you own",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// "-1" reads as a flag to the parser; say what it is instead.
		if m := negativeArg.FindStringSubmatch(err.Error()); m != nil {
			return usageError{fmt.Errorf("%s: a negative number is not a valid count (0 or more)", m[1])}
		}
		return usageError{err}
	})
	singleDashHelp(root)
	for _, setup := range rootSetup {
		setup(root)
	}
	root.AddCommand(newServerCmd(), newVersionCmd())
	for _, add := range extraCommands {
		root.AddCommand(add())
	}
	return root
}

// extraCommands are added by other files of this package (the CLI verbs,
// dev mode, the agent) so that each lives in its own file.
var extraCommands []func() *cobra.Command

// rootSetup are called by newRoot on the root command before the commands
// are added: the CLI's global flags (-addr, -token, -o) live on the root.
var rootSetup []func(root *cobra.Command)
