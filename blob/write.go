package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	gcblob "gocloud.dev/blob"
)

// Target is one place a stream is written to.
type Target struct {
	Region *Region
	Key    string
}

func (t Target) String() string { return t.Region.Name + ":" + t.Key }

// Expect is what a stream must be for its writes to be committed. A zero Digest or a
// negative Size is not checked.
type Expect struct {
	Digest Digest
	Size   int64
}

// Result is what Write saw.
type Result struct {
	Digest Digest
	Size   int64
	// Failed holds, by index into the targets, the writes that failed on their own (the
	// others were committed).
	Failed map[int]error
}

// ErrMismatch is returned when a stream's size or SHA-256 is not the expected one; no
// target was committed.
var ErrMismatch = errors.New("blob: the content does not match its expected size and SHA-256")

// pipelineDepth is how many chunks are in flight between the reader and the writers, so
// reading and hashing overlap with writing.
const pipelineDepth = 4

type piece struct {
	b    []byte
	n    int
	refs atomic.Int32
}

// Write streams src into every target at once, reading and hashing it once. Each target's
// write is committed only when the whole stream arrived and matched want; when it did not,
// every write is aborted and nothing appears under any key. progress, if set, is told the
// bytes read so far.
func Write(ctx context.Context, src io.Reader, want Expect, targets []Target, progress func(int64)) (Result, error) {
	type sink struct {
		w      *gcblob.Writer
		cancel context.CancelFunc
		ch     chan *piece
		err    error
	}
	free := make(chan *piece, pipelineDepth)
	for range pipelineDepth {
		free <- &piece{b: make([]byte, chunk)}
	}
	release := func(p *piece) {
		if p.refs.Add(-1) == 0 {
			free <- p
		}
	}
	sinks := make([]*sink, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wctx, cancel := context.WithCancel(ctx)
		w, err := t.Region.bucket.NewWriter(wctx, t.Key, &gcblob.WriterOptions{ContentType: "application/octet-stream"})
		s := &sink{w: w, cancel: cancel, ch: make(chan *piece, pipelineDepth)}
		if err != nil {
			s.err = t.Region.wrap("write", t.Key, err)
			cancel()
		}
		sinks[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range s.ch {
				if s.err == nil {
					if _, err := s.w.Write(p.b[:p.n]); err != nil {
						s.err = t.Region.wrap("write", t.Key, err)
						s.cancel()
					}
				}
				release(p)
			}
		}()
	}
	abortAll := func() {
		for _, s := range sinks {
			s.cancel()
			if s.w != nil {
				_ = s.w.Close() // after cancel, Close aborts the write
			}
		}
	}

	h := sha256.New()
	var total int64
	var readErr error
	for readErr == nil {
		p := <-free
		n, err := io.ReadFull(src, p.b)
		if n > 0 {
			h.Write(p.b[:n])
			total += int64(n)
			p.n = n
			p.refs.Store(int32(len(sinks)))
			if len(sinks) == 0 {
				free <- p
			}
			for _, s := range sinks {
				s.ch <- p
			}
			if progress != nil {
				progress(total)
			}
		} else {
			free <- p
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			readErr = io.EOF
		case err != nil:
			readErr = err
		case ctx.Err() != nil:
			readErr = ctx.Err()
		}
	}
	for _, s := range sinks {
		close(s.ch)
	}
	wg.Wait()
	res := Result{Digest: Digest(hex.EncodeToString(h.Sum(nil))), Size: total}
	if readErr != io.EOF {
		abortAll()
		return res, fmt.Errorf("read the content: %w", readErr)
	}
	if (want.Size >= 0 && total != want.Size) || (want.Digest != "" && res.Digest != want.Digest) {
		abortAll()
		return res, fmt.Errorf("%w: got %d bytes with SHA-256 %s, want %d bytes with %s", ErrMismatch, total, res.Digest, want.Size, want.Digest)
	}
	// Commit every target at once: on a local disk each commit ends with an fsync, and
	// the flushes of several files overlap.
	var commits sync.WaitGroup
	for i, s := range sinks {
		commits.Add(1)
		go func() {
			defer commits.Done()
			if s.err == nil {
				if err := s.w.Close(); err != nil {
					s.err = targets[i].Region.wrap("commit", targets[i].Key, err)
				} else if err := targets[i].Region.sync(targets[i].Key); err != nil {
					s.err = err
				}
			} else if s.w != nil {
				_ = s.w.Close()
			}
			s.cancel()
		}()
	}
	commits.Wait()
	for i, s := range sinks {
		if s.err != nil {
			if res.Failed == nil {
				res.Failed = map[int]error{}
			}
			res.Failed[i] = s.err
		}
	}
	return res, nil
}
