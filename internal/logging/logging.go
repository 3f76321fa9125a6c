// Package logging builds the go-hclog loggers of Drover's daemons.
package logging

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
)

// Config selects the level and format of a daemon's log.
type Config struct {
	Name   string
	Level  string // trace, debug, info, warn, error; info when empty
	JSON   bool
	Output io.Writer // stderr when nil
}

// New returns the root logger of a daemon.
func New(c Config) (hclog.Logger, error) {
	level := hclog.Info
	if c.Level != "" {
		level = hclog.LevelFromString(c.Level)
		if level == hclog.NoLevel {
			return nil, fmt.Errorf("log-level: %q is not one of trace, debug, info, warn, error", c.Level)
		}
	}
	out := c.Output
	if out == nil {
		out = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name: c.Name, Level: level, JSONFormat: c.JSON, Output: out,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	}), nil
}
