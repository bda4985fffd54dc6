package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gildhq/gild/agentproto"
)

// DefaultSpoolMax is how many unsent reports the agent keeps: at the default interval of
// 15 minutes, more than five days without the server.
const DefaultSpoolMax = 500

// spool is the directory of reports made but not yet acknowledged, one file each, named
// so that their names sort by the time the reports were made: TIME-ID.json. A report keeps
// its file, and so its ID, until the server acknowledges it.
type spool struct {
	dir string
	max int
}

// spoolTimeLayout sorts as text in time order (fixed width, UTC).
const spoolTimeLayout = "20060102T150405.000000000Z"

// put writes r to the spool and, when that makes more than max, drops the oldest. It
// returns the IDs of the reports dropped.
func (s spool) put(r agentproto.Report) (dropped []string, err error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool report %s: %w", r.ID, err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("spool report %s: %w", r.ID, err)
	}
	name := r.Time.UTC().Format(spoolTimeLayout) + "-" + r.ID + ".json"
	if err := writeFileAtomic(filepath.Join(s.dir, name), data, 0o600); err != nil {
		return nil, fmt.Errorf("spool report %s: %w", r.ID, err)
	}
	names, err := s.list()
	if err != nil {
		return nil, err
	}
	for len(names) > max(s.max, 1) {
		if err := os.Remove(filepath.Join(s.dir, names[0])); err != nil && !isNotExist(err) {
			return dropped, fmt.Errorf("spool: drop the oldest report: %w", err)
		}
		dropped = append(dropped, reportIDOf(names[0]))
		names = names[1:]
	}
	return dropped, nil
}

// list returns the names of the spooled reports, oldest first. Temporary files of an
// interrupted write start with a dot and are not reports.
func (s spool) list() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list spool: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && !strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".json") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// read reads a spooled report.
func (s spool) read(name string) (agentproto.Report, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return agentproto.Report{}, fmt.Errorf("read spooled report: %w", err)
	}
	var r agentproto.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return agentproto.Report{}, fmt.Errorf("read spooled report %s: %w", name, err)
	}
	return r, nil
}

// remove deletes a spooled report once the server has it (or can never take it).
func (s spool) remove(name string) error {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !isNotExist(err) {
		return fmt.Errorf("remove spooled report: %w", err)
	}
	return nil
}

// clear deletes every spooled report: they belong to a machine identity that is gone.
func (s spool) clear() error {
	names, err := s.list()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := s.remove(n); err != nil {
			return err
		}
	}
	return nil
}

// reportIDOf is the report ID in a spool file name.
func reportIDOf(name string) string {
	name = strings.TrimSuffix(name, ".json")
	if _, id, ok := strings.Cut(name, "-"); ok {
		return id
	}
	return name
}
