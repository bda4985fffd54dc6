package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp is a QEMU Machine Protocol client: one command at a time, events skipped.
type qmp struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialQMP connects to the QMP socket and negotiates capabilities.
func dialQMP(ctx context.Context, path string) (*qmp, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("QMP: %w", err)
	}
	q := &qmp{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var greeting struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	line, err := q.r.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &greeting)
	}
	if err != nil || greeting.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("QMP: no greeting (%v): %.200s", err, line)
	}
	if _, err := q.execute("qmp_capabilities", 10*time.Second); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// execute runs a command and returns its "return" value.
func (q *qmp) execute(cmd string, timeout time.Duration) (json.RawMessage, error) {
	q.conn.SetDeadline(time.Now().Add(timeout))
	b, _ := json.Marshal(map[string]string{"execute": cmd})
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", cmd, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("QMP %s: %w", cmd, err)
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *qmpError       `json:"error"`
			Event  string          `json:"event"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("QMP %s: %w: %.200s", cmd, err, line)
		}
		switch {
		case resp.Event != "":
			continue // asynchronous; not an answer
		case resp.Error != nil:
			return nil, fmt.Errorf("QMP %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
		case resp.Return != nil:
			return resp.Return, nil
		}
		return nil, fmt.Errorf("QMP %s: unexpected answer %.200s", cmd, line)
	}
}

// status is the VM's run state: "running", "paused", "internal-error", "guest-panicked",
// "shutdown", ...
func (q *qmp) status() (string, error) {
	raw, err := q.execute("query-status", 5*time.Second)
	if err != nil {
		return "", err
	}
	var s struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("QMP query-status: %w", err)
	}
	return s.Status, nil
}

// powerdown presses the ACPI power button: systemd shuts the guest down cleanly.
func (q *qmp) powerdown() error {
	_, err := q.execute("system_powerdown", 5*time.Second)
	return err
}

func (q *qmp) Close() error {
	if q == nil {
		return nil
	}
	return q.conn.Close()
}
