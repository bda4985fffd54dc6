package controlplane

import (
	"context"
	"errors"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Chain runs several Hooks in order: each BeforeWrite sees what the one before returned,
// so that, say, the gallery fills in a VM's exact image version before the policy engine
// judges the VM.
func Chain(hooks ...Hooks) Hooks { return chain(hooks) }

type chain []Hooks

func (c chain) BeforeWrite(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, old, next *resource.Resource) (*resource.Resource, error) {
	for _, h := range c {
		var err error
		if next, err = h.BeforeWrite(ctx, tx, tree, old, next); err != nil {
			return nil, err
		}
	}
	return next, nil
}

func (c chain) AfterWrite(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, stored *resource.Resource) error {
	for _, h := range c {
		if err := h.AfterWrite(ctx, tx, tree, stored); err != nil {
			return err
		}
	}
	return nil
}

func (c chain) BeforeDelete(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, victim *resource.Resource) error {
	for _, h := range c {
		if err := h.BeforeDelete(ctx, tx, tree, victim); err != nil {
			return err
		}
	}
	return nil
}

func (c chain) AfterDelete(ctx context.Context, tx store.Tx, tree *resource.Hierarchy, deleted *resource.Resource) error {
	for _, h := range c {
		if err := h.AfterDelete(ctx, tx, tree, deleted); err != nil {
			return err
		}
	}
	return nil
}

func (c chain) Committed(ctx context.Context, ids []resource.ID) {
	for _, h := range c {
		h.Committed(ctx, ids)
	}
}

// maxUpdateAttempts bounds SystemWriter.Update's retries when other writers keep changing
// the resource under it.
const maxUpdateAttempts = 20

// Update reads the resource with id, lets mutate change it, and writes it back only if it
// still has the ETag it was read with, trying again from a fresh read otherwise. Nothing is
// written when mutate reports no change.
func (w SystemWriter) Update(ctx context.Context, id resource.ID, mutate func(r *resource.Resource) (bool, error)) error {
	var err error
	for range maxUpdateAttempts {
		var r *resource.Resource
		if r, err = w.Service.Get(ctx, System, id); err != nil {
			return err
		}
		changed, merr := mutate(r)
		if merr != nil || !changed {
			return merr
		}
		etag := r.ETag
		r.ETag, r.SystemData = "", nil
		_, _, err = w.Service.Put(ctx, System, r, store.Precondition{IfMatch: etag})
		var re *resource.Error
		if !errors.As(err, &re) || re.Code != resource.CodePreconditionFailed {
			return err
		}
	}
	return err
}
