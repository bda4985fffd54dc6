package agentproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The machine channel: a running agent talks HTTP to a gild server. Every body is JSON
// with the protocol Version. An agent authenticates with "Authorization: Bearer
// CREDENTIAL", the credential enrollment gave it.
//
//	POST PathEnroll       EnrollRequest → EnrollResponse (no credential: the one-time token is in the body)
//	POST PathReports      Report → ReportResponse; a report ID seen before is acknowledged again, not applied twice
//	GET  PathAssignments  → Assignments; with "If-None-Match: ETAG" and ?wait=SECONDS the server
//	                      holds the request until the assignments change (200) or the wait ends (304)
//
// Errors are gild's API errors: {"error":{"code","message"}}. 401 means the credential is
// unknown or revoked (the machine was deleted): the agent stops reporting and waits to be
// enrolled again.
const (
	PathEnroll      = "/agent/v1/enroll"
	PathReports     = "/agent/v1/reports"
	PathAssignments = "/agent/v1/assignments"
)

// FirstBootFwCfgName is the QEMU fw_cfg item that carries a VM's FirstBoot data: in the guest,
// /sys/firmware/qemu_fw_cfg/by_name/opt/org.gild/firstboot/raw (module qemu_fw_cfg).
const FirstBootFwCfgName = "opt/org.gild/firstboot"

// FirstBoot is what gild gives a VM it creates, without a network: who it is, who may log
// in, and how its agent enrolls. The agent provisions an instance once per InstanceID.
type FirstBoot struct {
	Version      int    `json:"version"`
	InstanceID   string `json:"instanceId"`   // new for every VM gild creates, also on refresh
	MachineID    string `json:"machineId"`    // the VM's resource ID
	ComputerName string `json:"computerName"` // the hostname
	// AdminUsername gets a home directory, the SSH keys and passwordless sudo; empty
	// means no account is created.
	AdminUsername string   `json:"adminUsername,omitempty"`
	SSHPublicKeys []string `json:"sshPublicKeys,omitempty"` // authorized_keys lines
	// Server is the gild server's URL as the guest reaches it (for a VM on user-mode
	// networking, http://10.0.2.2:PORT).
	Server          string `json:"server"`
	EnrollmentToken string `json:"enrollmentToken"`
}

// Validate reports every problem with f at once.
func (f FirstBoot) Validate() error {
	var errs []error
	if f.Version != Version {
		errs = append(errs, fmt.Errorf("version %d, this side speaks %d", f.Version, Version))
	}
	for _, r := range []struct{ field, v string }{{"instanceId", f.InstanceID}, {"machineId", f.MachineID}, {"computerName", f.ComputerName}, {"server", f.Server}, {"enrollmentToken", f.EnrollmentToken}} {
		if strings.TrimSpace(r.v) == "" {
			errs = append(errs, fmt.Errorf("%s is empty", r.field))
		}
	}
	return errors.Join(errs...)
}

// EnrollRequest trades a one-time enrollment token for a credential of the machine's own.
type EnrollRequest struct {
	Version int    `json:"version"`
	Token   string `json:"token"`
	// Name is the machine's name when the token does not fix one (an enrollment token for
	// a resource group enrolls a Microsoft.HybridCompute/machines named after the host).
	Name   string          `json:"name,omitempty"`
	Facts  Facts           `json:"facts"`
	Tattoo json.RawMessage `json:"tattoo,omitempty"` // /etc/gild/tattoo.json as read; absent when there is none
}

// EnrollResponse is the machine's identity and credential. The credential is shown once;
// the server keeps only its hash.
type EnrollResponse struct {
	Version    int    `json:"version"`
	MachineID  string `json:"machineId"`
	Credential string `json:"credential"`
	// ReportIntervalSeconds is how often the agent reports when nothing changes.
	ReportIntervalSeconds int `json:"reportIntervalSeconds"`
}

// Facts are what the agent reads about the machine on every report.
type Facts struct {
	Hostname      string            `json:"hostname"`
	Kernel        string            `json:"kernel,omitempty"`    // uname -r
	OSRelease     map[string]string `json:"osRelease,omitempty"` // os-release(5)
	Architecture  string            `json:"architecture,omitempty"`
	UptimeSeconds float64           `json:"uptimeSeconds"`
	BootTime      time.Time         `json:"bootTime"` // the last boot, by the guest's clock
	AgentVersion  string            `json:"agentVersion"`
}

// Report is one report of a machine: a heartbeat with its facts, its tattoo, the latest
// result of every assignment and the events since the last acknowledged report. An agent
// that cannot reach the server keeps its reports on disk and sends them, oldest first,
// with their original IDs, when it can.
type Report struct {
	Version     int                `json:"version"`
	ID          string             `json:"id"`   // unique per report; the idempotency key
	Time        time.Time          `json:"time"` // when the agent made it
	Facts       Facts              `json:"facts"`
	Tattoo      json.RawMessage    `json:"tattoo,omitempty"`
	Assignments []AssignmentReport `json:"assignments,omitempty"`
	Events      []Event            `json:"events,omitempty"`
}

// AssignmentReport is the outcome of one run of an assignment's checks, in the shape of
// Azure machine configuration's latestAssignmentReport.
type AssignmentReport struct {
	Name string `json:"name"` // the guestConfigurationAssignment's name
	// Hash is the Assignment.Hash that was run, so that a result for an assignment that
	// has changed since is recognised as stale.
	Hash             string           `json:"hash"`
	ComplianceStatus string           `json:"complianceStatus"` // StatusCompliant, StatusNonCompliant or "Pending"
	StartTime        time.Time        `json:"startTime"`
	EndTime          time.Time        `json:"endTime"`
	OperationType    string           `json:"operationType"` // "Initial" (first run of this Hash) or "Consistency"
	Resources        []ResourceReport `json:"resources"`
}

// ResourceReport is one check's result inside an assignment report.
type ResourceReport struct {
	ResourceID       string   `json:"resourceId"` // the check's name
	ComplianceStatus string   `json:"complianceStatus"`
	Reasons          []Reason `json:"reasons"`
	Expected         string   `json:"expected,omitempty"`
	Actual           string   `json:"actual,omitempty"`
}

// The kinds of Event.
const (
	EventCorrection = "Correction" // ApplyAndAutoCorrect (or ApplyAndMonitor's first run) changed something
	EventApplyError = "ApplyError" // a correction was tried and failed
)

// Event is something the agent did or saw, reported once (the server ignores an ID it has).
type Event struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Assignment string    `json:"assignment"`
	Check      string    `json:"check"`
	Target     string    `json:"target,omitempty"` // what changed: "/etc/ssh/sshd_config PermitRootLogin"
	Before     string    `json:"before,omitempty"`
	After      string    `json:"after,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// ReportResponse acknowledges a report.
type ReportResponse struct {
	Version   int  `json:"version"`
	Duplicate bool `json:"duplicate,omitempty"` // the ID was seen before; nothing was applied again
	// AssignmentsETag is the ETag of the machine's assignments now: when it differs from
	// the agent's, the agent fetches them.
	AssignmentsETag       string `json:"assignmentsETag"`
	ReportIntervalSeconds int    `json:"reportIntervalSeconds"`
}

// The assignment types of Azure machine configuration.
const (
	AssignmentAudit               = "Audit"
	AssignmentApplyAndMonitor     = "ApplyAndMonitor"
	AssignmentApplyAndAutoCorrect = "ApplyAndAutoCorrect"
)

// Assignments are the machine configurations a machine must run.
type Assignments struct {
	Version               int          `json:"version"`
	ETag                  string       `json:"etag"`
	ReportIntervalSeconds int          `json:"reportIntervalSeconds"`
	Assignments           []Assignment `json:"assignments"`
}

// Assignment is one guestConfigurationAssignment as the agent runs it.
type Assignment struct {
	Name                 string `json:"name"`
	Hash                 string `json:"hash"` // changes whenever anything below does
	Configuration        string `json:"configuration"`
	ConfigurationVersion string `json:"configurationVersion"`
	AssignmentType       string `json:"assignmentType"`
	// Checks is a check set (check.Parse's form) with the parameters already in place.
	// ImageBaseline, instead, says to run the checks the image was validated with, from
	// /etc/gild/checks.json.
	Checks        json.RawMessage `json:"checks,omitempty"`
	ImageBaseline bool            `json:"imageBaseline,omitempty"`
}

// ImageChecksPath is where the pipeline puts an image's validation checks.
const ImageChecksPath = "/etc/gild/checks.json"

// TattooPath is where the pipeline puts an image's tattoo.
const TattooPath = "/etc/gild/tattoo.json"

// Validate checks a report as a server receives it, reporting every problem at once and
// naming each field.
func (r Report) Validate() error {
	var errs []error
	if r.Version != Version {
		errs = append(errs, fmt.Errorf("version: %d, this side speaks %d", r.Version, Version))
	}
	if r.ID == "" || len(r.ID) > 128 {
		errs = append(errs, fmt.Errorf("id: must be 1 to 128 characters, is %d", len(r.ID)))
	}
	if r.Time.IsZero() {
		errs = append(errs, errors.New("time: missing"))
	}
	if len(r.Assignments) > 50 {
		errs = append(errs, fmt.Errorf("assignments: %d, at most 50", len(r.Assignments)))
	}
	for i, a := range r.Assignments {
		if a.Name == "" {
			errs = append(errs, fmt.Errorf("assignments[%d].name: empty", i))
		}
		switch a.ComplianceStatus {
		case StatusCompliant, StatusNonCompliant, "Pending":
		default:
			errs = append(errs, fmt.Errorf("assignments[%d].complianceStatus: %q is not Compliant, NonCompliant or Pending", i, a.ComplianceStatus))
		}
		for j, res := range a.Resources {
			switch res.ComplianceStatus {
			case StatusCompliant, StatusNonCompliant, StatusError:
			default:
				errs = append(errs, fmt.Errorf("assignments[%d].resources[%d].complianceStatus: %q is not Compliant, NonCompliant or Error", i, j, res.ComplianceStatus))
			}
		}
	}
	if len(r.Events) > 1000 {
		errs = append(errs, fmt.Errorf("events: %d, at most 1000 in a report", len(r.Events)))
	}
	for i, e := range r.Events {
		if e.ID == "" {
			errs = append(errs, fmt.Errorf("events[%d].id: empty", i))
		}
		if e.Kind == "" {
			errs = append(errs, fmt.Errorf("events[%d].kind: empty", i))
		}
	}
	return errors.Join(errs...)
}
