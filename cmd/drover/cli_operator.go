package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
)

func init() { extraCommands = append(extraCommands, newOperatorCmd) }

func newOperatorCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "operator",
		Short: "Back up and restore the cluster's state; manage Raft membership",
		Example: `  drover operator snapshot save backup.snap
  drover operator raft list-peers`,
	},
		group(&cobra.Command{
			Use:     "snapshot",
			Short:   "Save the whole state to a file, or restore it from one",
			Example: "  drover operator snapshot save backup.snap\n  drover operator snapshot restore backup.snap",
		}, newSnapshotSaveCmd(), newSnapshotRestoreCmd()),
		group(&cobra.Command{
			Use:     "raft",
			Short:   "List and remove the servers of the Raft configuration",
			Example: "  drover operator raft list-peers\n  drover operator raft remove-peer s3",
		}, newRaftListCmd(), newRaftRemoveCmd()),
	)
}

func newSnapshotSaveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the whole state to FILE (- for standard output)",
		Long: `Save a snapshot of the whole state. The file is written next to FILE and
renamed into place once complete, so FILE is never half written.`,
		Example: `  drover operator snapshot save backup.snap
  drover operator snapshot save - | gzip > backup.snap.gz`,
		Args: argsExactly("FILE"),
		RunE: verb(func(c *cli, args []string) error {
			path := args[0]
			if path == "-" {
				_, err := c.api.SaveSnapshot(c.ctx, c.out)
				return err
			}
			m, size, err := saveSnapshotFile(c, path)
			if err != nil {
				return err
			}
			doc := map[string]any{"file": path, "index": m.Index, "bytes": size}
			return c.show(doc, func(w io.Writer) {
				fmt.Fprintf(w, "Saved snapshot at index %d to %s (%d bytes)\n", m.Index, path, size)
			})
		}),
	}
}

// saveSnapshotFile writes the snapshot to a temporary file beside path and
// renames it into place when complete.
func saveSnapshotFile(c *cli, path string) (client.Meta, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return client.Meta{}, 0, fmt.Errorf("snapshot file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	m, err := c.api.SaveSnapshot(c.ctx, f)
	if err != nil {
		return m, 0, err
	}
	if err := f.Sync(); err != nil {
		return m, 0, fmt.Errorf("snapshot file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return m, 0, fmt.Errorf("snapshot file: %w", err)
	}
	if err := f.Close(); err != nil {
		return m, 0, fmt.Errorf("snapshot file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return m, 0, fmt.Errorf("snapshot file: %w", err)
	}
	done = true
	return m, st.Size(), nil
}

func newSnapshotRestoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole state with a snapshot read from FILE (- for standard input)",
		Long: `Replace the cluster's whole state with a saved snapshot: tenants, instances,
nodes, tokens. What changed since the snapshot was taken is lost.`,
		Example: `  drover operator snapshot restore backup.snap`,
		Args:    argsExactly("FILE"),
		RunE: verb(func(c *cli, args []string) error {
			var r io.Reader = c.in
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("snapshot file: %w", err)
				}
				defer f.Close()
				r = f
			}
			m, err := c.api.RestoreSnapshot(c.ctx, r)
			if err != nil {
				return err
			}
			doc := map[string]any{"restored": true, "index": m.Index}
			return c.show(doc, func(w io.Writer) {
				fmt.Fprintf(w, "Restored snapshot from %s (index %d)\n", args[0], m.Index)
			})
		}),
	}
}

func newRaftListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list-peers",
		Short:   "List the servers of the Raft configuration",
		Example: `  drover operator raft list-peers -o json`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			peers, _, err := c.api.RaftPeers(c.ctx, nil)
			if err != nil {
				return err
			}
			doc := map[string]any{"servers": peers}
			return c.show(doc, func(w io.Writer) { membersTable(w, peers) })
		}),
	}
}

func newRaftRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove-peer ID",
		Short: "Remove a server from the Raft configuration",
		Long: `Remove a server, for good, from the Raft configuration: for a server that is
gone and will not come back. The leader cannot remove itself.`,
		Example: `  drover operator raft remove-peer s3`,
		Args:    argsExactly("ID"),
		RunE: verb(func(c *cli, args []string) error {
			m, err := c.api.RemoveRaftPeer(c.ctx, args[0])
			if err != nil {
				return err
			}
			return c.show(deleted{ID: args[0], Deleted: true, Index: m.Index}, func(w io.Writer) {
				fmt.Fprintf(w, "Removed server %s from the Raft configuration\n", args[0])
			})
		}),
	}
}
