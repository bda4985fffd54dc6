package builder

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Cleanup is a stack of undo steps: what a driver mounted, created or started, pushed as it
// goes, undone in reverse order whether the work succeeded or not. The zero value is ready.
type Cleanup struct {
	mu    sync.Mutex
	steps []undo
}

type undo struct {
	name string
	fn   func(context.Context) error
}

// Push adds an undo step; name says what it undoes ("unmount /x/proc") for its error.
func (c *Cleanup) Push(name string, fn func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, undo{name, fn})
}

// Len is the number of steps not yet run.
func (c *Cleanup) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.steps)
}

// Run runs every step, last pushed first, and empties the stack. A failing step does not
// stop the others. The steps get a context that is not cancelled with ctx: undoing a
// cancelled build is exactly when cleanup must still run. The error joins every step's
// error, each naming its step.
func (c *Cleanup) Run(ctx context.Context) error {
	c.mu.Lock()
	steps := c.steps
	c.steps = nil
	c.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", steps[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// RunInto runs the steps and joins their error into *errp, for a deferred call:
//
//	var undo builder.Cleanup
//	defer undo.RunInto(ctx, &err)
func (c *Cleanup) RunInto(ctx context.Context, errp *error) {
	if err := c.Run(ctx); err != nil {
		*errp = errors.Join(*errp, err)
	}
}
