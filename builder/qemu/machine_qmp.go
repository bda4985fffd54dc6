package qemu

import "context"

// A QMP socket serves one client at a time, so a long-lived VM's QMP is used one command
// per connection: whoever comes next (this server after a restart, an operator with
// socat) is not locked out by a connection left open.

// QMPStatus connects to the QMP socket at path and returns the VM's run state: "running",
// "paused", "internal-error", "guest-panicked", "shutdown", ...
func QMPStatus(ctx context.Context, path string) (string, error) {
	q, err := dialQMP(ctx, path)
	if err != nil {
		return "", err
	}
	defer q.Close()
	return q.status()
}

// QMPPowerdown connects to the QMP socket at path and presses the ACPI power button, which
// a guest running systemd answers with a clean shutdown. It returns once QEMU has taken the
// command, not when the guest is off.
func QMPPowerdown(ctx context.Context, path string) error {
	q, err := dialQMP(ctx, path)
	if err != nil {
		return err
	}
	defer q.Close()
	return q.powerdown()
}
