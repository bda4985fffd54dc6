package sqldb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
)

// A resource's digest summarises everything ReplacePolicyStates compares of its states
// (keys, state, effect, reasons as given, definitions), as the last replacement of all
// its assignments wrote them. policy_state_digests keeps one per resource, so that a scan
// whose result for a resource hashes to the stored digest skips reading that resource's
// rows: reading 2 million rows back cost an unchanged 100,000 x 20 scan 4.3 s in SQLite,
// most of a 10 s budget; with the digests the whole pass takes 0.7 s.
//
// The digest is a cache, and a conservative one: it is kept only by a replacement of
// every assignment, dropped by every other write of a resource's states, and a digest
// that differs (reasons that compact alike but are spaced otherwise, say) only sends the
// resource through the row-by-row diff, which decides. It is 128 bits of SHA-256 over the
// states, with long IDs entered as 64-bit SHA-256 hashes of their own: two different
// results share a digest with odds of about 2^-64.
const (
	psDigestLen     = 16
	psDigestVersion = "gild-policy-states-v1" // change to invalidate every stored digest
	psDigestRows    = 200
)

var (
	qPSDigestsFull = psDigestQuery(psLoadKeys)
	qPSDigestsPut  = insertValues(`INSERT INTO policy_state_digests (resource_key, digest)`, 2, psDigestRows, psDigestUpsert)
)

const psDigestUpsert = ` ON CONFLICT (resource_key) DO UPDATE SET digest = excluded.digest`

func psDigestQuery(n int) string {
	return `SELECT resource_key, digest FROM policy_state_digests WHERE resource_key IN (` + placeholders(n) + `)`
}

// digestEntries returns the digest of each resource's entries (sorted, those of rank r at
// entries[start[r]:start[r+1]]). Long IDs repeated across a batch (assignments,
// definitions) go in as hashes of their own, worked out once per call, so that the
// bytes hashed per state are few.
func digestEntries(entries []psEntry, start []int) [][psDigestLen]byte {
	ranks := len(start) - 1
	out := make([][psDigestLen]byte, ranks)
	idHash := map[string][8]byte{}
	hashID := func(s string) [8]byte {
		if h, ok := idHash[s]; ok {
			return h
		}
		sum := sha256.Sum256([]byte(s))
		var h [8]byte
		copy(h[:], sum[:])
		idHash[s] = h
		return h
	}
	// An assignment's states share its key and, nearly always, its definitions: each
	// assignment remembers their hashes, which saves three map lookups per state.
	hashes := func(e *psEntry) *psIDHashes {
		c := &e.asg.digest
		if !c.ok {
			c.key, c.ok = hashID(e.akey), true
			c.def, c.set = "", ""
			c.defHash, c.setHash = hashID(""), hashID("")
		}
		if c.def != e.s.DefinitionID {
			c.def, c.defHash = e.s.DefinitionID, hashID(e.s.DefinitionID)
		}
		if c.set != e.s.SetDefinitionID {
			c.set, c.setHash = e.s.SetDefinitionID, hashID(e.s.SetDefinitionID)
		}
		return c
	}
	h := sha256.New()
	var buf []byte
	var sum [sha256.Size]byte
	for r := 0; r < ranks; r++ {
		h.Reset()
		h.Write([]byte(psDigestVersion))
		for i := start[r]; i < start[r+1]; i++ {
			e := &entries[i]
			ids := hashes(e)
			buf = append(buf[:0], ids.key[:]...)
			buf = appendString(buf, e.fkey)
			buf = appendString(buf, e.state)
			buf = appendString(buf, e.effect)
			buf = binary.AppendUvarint(buf, uint64(len(e.reasons)))
			buf = append(buf, e.reasons...)
			buf = append(buf, ids.defHash[:]...)
			buf = append(buf, ids.setHash[:]...)
			h.Write(buf)
		}
		copy(out[r][:], h.Sum(sum[:0]))
	}
	return out
}

// psIDHashes are the hashes digestEntries took of an assignment's key and of the
// definitions it last saw with it.
type psIDHashes struct {
	ok               bool
	key              [8]byte
	def, set         string
	defHash, setHash [8]byte
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// staleResources returns, in rank order, the resources whose stored digest is missing or
// differs from digests.
func (t *txn) staleResources(ctx context.Context, resKeys []string, digests [][psDigestLen]byte) ([]int, error) {
	var stale []int
	var key, dig sql.RawBytes
	args := make([]any, 0, psLoadKeys)
	for first := 0; first < len(resKeys); first += psLoadKeys {
		chunk := resKeys[first:min(first+psLoadKeys, len(resKeys))]
		args = args[:0]
		for _, k := range chunk {
			args = append(args, k)
		}
		query := qPSDigestsFull
		if len(chunk) != psLoadKeys {
			query = psDigestQuery(len(chunk))
		}
		rows, err := t.s.query(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("read digests: %w", t.db.classify(err, "policy states"))
		}
		// The rows come in no particular order; mark the chunk's resources that match.
		fresh := make([]bool, len(chunk))
		for rows.Next() {
			if err := rows.Scan(&key, &dig); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read digests: %w", err)
			}
			i, ok := searchKey(chunk, key)
			if ok && bytes.Equal(dig, digests[first+i][:]) {
				fresh[i] = true
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read digests: %w", t.db.classify(err, "policy states"))
		}
		for i, f := range fresh {
			if !f {
				stale = append(stale, first+i)
			}
		}
	}
	return stale, nil
}

// searchKey finds key in sorted without making a string of it.
func searchKey(sorted []string, key []byte) (int, bool) {
	lo, hi := 0, len(sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sorted[m] < string(key) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(sorted) && sorted[lo] == string(key)
}

// storeDigests records the digests of the resources of ranks (keys their keys).
func (t *txn) storeDigests(ctx context.Context, keys []string, ranks []int, digests [][psDigestLen]byte) error {
	w := bulkWriter{t: t, full: qPSDigestsPut, head: `INSERT INTO policy_state_digests (resource_key, digest)`,
		tail: psDigestUpsert, ncol: 2, rows: psDigestRows}
	for i, r := range ranks {
		if err := w.add(ctx, keys[i], digests[r][:]); err != nil {
			return fmt.Errorf("store digests: %w", err)
		}
	}
	if err := w.flush(ctx); err != nil {
		return fmt.Errorf("store digests: %w", err)
	}
	return nil
}

// forgetDigests drops the digests of resources whose states were written otherwise than
// by a replacement of all their assignments.
func (t *txn) forgetDigests(ctx context.Context, keys []string) error {
	for first := 0; first < len(keys); first += psLoadKeys {
		chunk := keys[first:min(first+psLoadKeys, len(keys))]
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k
		}
		if _, err := t.s.exec(ctx, `DELETE FROM policy_state_digests WHERE resource_key IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
			return fmt.Errorf("forget digests: %w", t.db.classify(err, "policy states"))
		}
	}
	return nil
}
