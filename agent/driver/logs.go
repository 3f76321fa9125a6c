package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Names of a task's log files in its LogDir. A rotated file keeps its
// previous content under the same name with RotatedSuffix appended.
const (
	StdoutFile    = "stdout.log"
	StderrFile    = "stderr.log"
	RotatedSuffix = ".1"
)

// openLog opens a log file for a process to append to. O_APPEND
// matters for rotation: after the driver truncates the file, the
// process's next write lands at the new end, not at its old offset.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
}

// rotate moves the content of the log file at path to path+RotatedSuffix
// when it is larger than maxBytes, by copy and truncate: the process
// keeps its descriptor and goes on writing to path. Bytes written
// between the copy and the truncation are lost.
//
// The copy is written to a temporary file renamed into place after the
// truncation, so a new rotated file appears only once the rotation is
// complete; Follow relies on that.
func rotate(path string, maxBytes int64) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= maxBytes {
		return false, err
	}
	src, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer src.Close()
	tmp := path + RotatedSuffix + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Truncate(path, 0)
	}
	if err == nil {
		err = os.Rename(tmp, path+RotatedSuffix)
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("rotate %s: %w", path, err)
	}
	return true, nil
}

// Tail returns the last n lines of the log file at path, without their
// line endings, and the file's size when it was read: the offset to
// pass to Follow to continue after them. When path holds fewer than n
// lines, the rest are taken from the end of its rotated copy.
func Tail(path string, n int) (lines []string, end int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	end = fi.Size()
	lines, err = tailLines(f, end, n)
	if err != nil {
		return nil, 0, fmt.Errorf("tail %s: %w", path, err)
	}
	if len(lines) < n {
		if rf, err := os.Open(path + RotatedSuffix); err == nil {
			defer rf.Close()
			if rfi, err := rf.Stat(); err == nil {
				older, err := tailLines(rf, rfi.Size(), n-len(lines))
				if err == nil {
					lines = append(older, lines...)
				}
			}
		}
	}
	return lines, end, nil
}

// tailLines returns the last n lines of the first size bytes of r,
// reading backwards in chunks so that large files cost little.
func tailLines(r io.ReaderAt, size int64, n int) ([]string, error) {
	if n <= 0 || size == 0 {
		return nil, nil
	}
	const chunk = 64 << 10
	var buf []byte
	off := size
	for off > 0 {
		step := min(off, chunk)
		off -= step
		b := make([]byte, step, int(step)+len(buf))
		if _, err := r.ReadAt(b, off); err != nil && err != io.EOF {
			return nil, err
		}
		buf = append(b, buf...)
		// One newline more than n lines need marks the start of the
		// first of them; a final newline ends the last line.
		if bytes.Count(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n")) >= n {
			break
		}
	}
	all := bytes.Split(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n"))
	if off > 0 {
		all = all[1:] // a partial line cut by the chunk boundary
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	lines := make([]string, len(all))
	for i, l := range all {
		lines[i] = string(l)
	}
	return lines, nil
}

// followInterval is how often Follow looks for new output.
const followInterval = 200 * time.Millisecond

// Follow copies to w what is appended to the log file at path from
// offset on (from its current end when offset is negative), as the
// file grows, until ctx is done or reading or writing fails; it then
// returns ctx's error or the failure. Once until is closed (the process
// writing the file is gone for good), it copies what is left and
// returns nil; a nil until never closes.
//
// Follow survives the driver's copy-and-truncate rotation: when the
// file is rotated it first copies what it had not yet read from the
// rotated copy, then continues from the start of the file.
func Follow(ctx context.Context, path string, offset int64, w io.Writer, until <-chan struct{}) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if offset < 0 || offset > fi.Size() {
		offset = fi.Size()
	}
	rotated := path + RotatedSuffix
	last, _ := os.Stat(rotated)
	shrunk := false // seen smaller than offset once, rotation unconfirmed
	over := false   // until is closed
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		if cur, err := os.Stat(rotated); err == nil && !sameFile(last, cur) {
			// A new rotated copy: it holds the old file up to the
			// truncation, which is after offset.
			last, shrunk = cur, false
			if err := copyFrom(w, rotated, offset); err != nil {
				return err
			}
			offset = 0
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() < offset {
			// Truncated. The driver renames the copy into place just
			// after truncating, so give it a moment to appear before
			// starting over without it.
			if !shrunk {
				shrunk = true
			} else {
				offset, shrunk = 0, false
			}
		}
		if fi.Size() > offset {
			n, err := io.Copy(w, io.NewSectionReader(f, offset, fi.Size()-offset))
			offset += n
			if err != nil {
				return err
			}
		}
		if over {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-until:
			over = true // one last look
		case <-t.C:
		}
	}
}

// copyFrom copies the file at path from offset to its end to w.
func copyFrom(w io.Writer, path string, offset int64) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // rotated again meanwhile; that output is lost
		}
		return err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}

// sameFile reports whether a and b describe the same version of a file.
// Each rotation renames a new file into place, but inode numbers can be
// reused, so the size and modification time are compared too.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) &&
		a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
