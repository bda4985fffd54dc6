// Package pgtest gives tests a real, empty PostgreSQL database. With GILD_TEST_POSTGRES set
// to a server URL it creates databases on that server; otherwise it starts a private
// cluster on first use, listening only on a Unix socket in a temporary directory, and
// stops it when the test process ends (call Main from TestMain so that happens).
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Environment variables that steer the harness.
const (
	// EnvServer is a URL of a PostgreSQL server to use instead of a private cluster; the
	// user needs CREATEDB.
	EnvServer = "GILD_TEST_POSTGRES"
	// EnvRequire, set to 1, makes missing PostgreSQL binaries a failure rather than a skip,
	// so CI cannot pass by skipping.
	EnvRequire = "GILD_REQUIRE_POSTGRES"
)

// SkipMessage is what a test says when it skips for want of PostgreSQL.
const SkipMessage = "PostgreSQL not installed; `make test` installs it (apt-get install postgresql)"

var (
	once    sync.Once
	cl      *cluster
	admin   string // URL of a database to run CREATE DATABASE in
	startEr error
	missing bool // binaries not found
)

// URL returns the URL of a new, empty database, dropped (on an external server) when t
// ends. It skips t when PostgreSQL is not installed, unless GILD_REQUIRE_POSTGRES=1.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if missing {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("pgtest: %s=1 but %v", EnvRequire, startEr)
		}
		t.Skip(SkipMessage)
	}
	if startEr != nil {
		t.Fatalf("pgtest: %v", startEr)
	}
	name := "gild_test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	dbURL := withDatabase(admin, name)
	if cl == nil {
		// A private cluster is thrown away whole at the end; a shared server is not.
		t.Cleanup(func() {
			db, err := sql.Open("pgx", admin)
			if err != nil {
				t.Errorf("pgtest: %v", err)
				return
			}
			defer db.Close()
			if _, err := db.ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
				t.Errorf("pgtest: drop database %s: %v", name, err)
			}
		})
	}
	return dbURL
}

// Main runs the tests and then stops the private cluster, if one was started. Use it as
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if cl != nil {
		if err := cl.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	os.Exit(code)
}

func setup() {
	if u := os.Getenv(EnvServer); u != "" {
		admin = u
		return
	}
	bin, err := findBinaries()
	if err != nil {
		missing, startEr = true, err
		return
	}
	cl, startEr = start(bin)
	if startEr == nil {
		admin = cl.url("postgres")
	}
}

func withDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// findBinaries returns the directory holding initdb and pg_ctl: from PATH, else the newest
// /usr/lib/postgresql/*/bin (where Debian keeps them off PATH).
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin")
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// cluster is a private PostgreSQL instance.
type cluster struct {
	bin   string
	dir   string // socket directory; the data directory is inside it
	runAs string // system user the server runs as; "" for the current one
}

const (
	dirPrefix = "gild-pgtest-"
	ownerFile = "owner.pid"
	port      = 5432 // only names the socket file, which lives in the cluster's own directory
)

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) url(db string) string {
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(port)}, "user": {"postgres"}, "sslmode": {"disable"}}
	return "postgres:///" + db + "?" + q.Encode()
}

func start(bin string) (*cluster, error) {
	reapStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	c := &cluster{bin: bin, dir: dir}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, c.fail(fmt.Errorf("start PostgreSQL: %w", err))
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		c.runAs = "postgres"
		u, err := user.Lookup(c.runAs)
		if err != nil {
			return nil, c.fail(fmt.Errorf("start PostgreSQL: running as root needs the %q system user, which the postgresql package creates: %w", c.runAs, err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, c.fail(fmt.Errorf("start PostgreSQL: %w", err))
		}
	}
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, c.fail(fmt.Errorf("initdb: %w\n%s", err, out))
	}
	conf := fmt.Sprintf("\n# pgtest: a private cluster reachable only through its socket\nlisten_addresses = ''\nunix_socket_directories = '%s'\nport = %d\nmax_connections = 200\nshared_buffers = 32MB\n", c.dir, port)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return nil, c.fail(fmt.Errorf("configure PostgreSQL: %w", err))
	}
	if out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		return nil, c.fail(fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log))
	}
	return c, nil
}

// run runs a PostgreSQL program, as the cluster's user when that is not us: runuser where
// it exists (util-linux), su otherwise.
func (c *cluster) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	switch {
	case c.runAs == "":
		cmd = exec.Command(path, args...)
	case haveRunuser():
		cmd = exec.Command("runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	default:
		quoted := make([]string, 0, len(args)+1)
		for _, a := range append([]string{path}, args...) {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		cmd = exec.Command("su", c.runAs, "-s", "/bin/sh", "-c", strings.Join(quoted, " "))
	}
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The server must outlive the command that starts it, and a Ctrl-C meant for the
	// tests must not reach it before Main stops it cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Run()
	return out.Bytes(), err
}

func haveRunuser() bool {
	_, err := exec.LookPath("runuser")
	return err == nil
}

func (c *cluster) fail(err error) error {
	os.RemoveAll(c.dir)
	return err
}

// stop shuts the server down at once (the data is thrown away, so nothing needs saving)
// and removes its directory.
func (c *cluster) stop() error {
	out, err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
	if rerr := os.RemoveAll(c.dir); err == nil && rerr != nil {
		return fmt.Errorf("remove %s: %w", c.dir, rerr)
	}
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// reapStale stops and removes clusters left by test processes that died before Main could
// stop them (a killed go test, say), so they do not pile up.
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		c := &cluster{dir: d}
		if bin, err := findBinaries(); err == nil {
			c.bin = bin
			if os.Geteuid() == 0 {
				c.runAs = "postgres"
			}
			c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
		}
		os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
