package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// facts reads what every report says about the machine. What cannot be read is left
// empty: a report with fewer facts is better than none.
func facts(env check.Env, now time.Time) agentproto.Facts {
	f := agentproto.Facts{AgentVersion: agentVersion(), Architecture: unameMachine(runtime.GOARCH)}
	f.Hostname = readTrimmed(env, "/proc/sys/kernel/hostname")
	if f.Hostname == "" {
		f.Hostname = readTrimmed(env, "/etc/hostname")
	}
	f.Kernel = readTrimmed(env, "/proc/sys/kernel/osrelease")
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err := env.ReadFile(p); err == nil {
			f.OSRelease = parseOSRelease(data)
			break
		}
	}
	if up, ok := uptime(env); ok {
		f.UptimeSeconds = up
		// Rounded to the second, so that the boot time of one boot reads the same in every
		// report despite the jitter between the clock and /proc/uptime.
		f.BootTime = now.Add(-time.Duration(up * float64(time.Second))).Round(time.Second).UTC()
	}
	return f
}

// uptime reads /proc/uptime's first field, the seconds since the kernel started.
func uptime(env check.Env) (float64, bool) {
	data, err := env.ReadFile("/proc/uptime")
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// unameMachine names a Go architecture as uname -m does, which is what os-release readers
// and package repositories call it.
func unameMachine(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	case "arm":
		return "armv7l"
	}
	return goarch // riscv64, ppc64le, s390x, loong64... are spelt alike
}

// readTattoo returns the image's tattoo as raw JSON, compacted, or nil when the image has
// none or it is not JSON (a report with a broken tattoo would be refused as a whole).
func readTattoo(env check.Env) (json.RawMessage, error) {
	data, err := env.ReadFile(agentproto.TattooPath)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read tattoo: %w", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, fmt.Errorf("read tattoo %s: not JSON: %w", agentproto.TattooPath, err)
	}
	return json.RawMessage(compact.Bytes()), nil
}

// isNotExist reports whether err says a file does not exist, including "not a directory"
// for a path through a regular file.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// newID returns a random 128-bit identifier in hex, for reports and events: unique without
// coordination, so the server can tell a resent report from a new one.
func newID() string {
	var b [16]byte
	// crypto/rand.Read never fails on Linux (getrandom), and panics rather than return
	// predictable bytes elsewhere.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
