package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// Prefixes of the secrets fleet hands out.
const (
	EnrollmentTokenPrefix = "gild-enroll-"
	CredentialPrefix      = "gild-agent-"
)

// VMEnrollmentTTL is how long a VM's first-boot enrollment token lasts: long enough for a
// VM that is started late, short enough that a leaked disk image is no key.
const VMEnrollmentTTL = 7 * 24 * time.Hour

// EnrollmentToken makes a one-time token with which the agent of the VM machineID enrolls
// (vm.Enroller). Every call makes a new token; an unused older one simply expires.
func (s *Service) EnrollmentToken(ctx context.Context, machineID resource.ID) (string, error) {
	return s.CreateEnrollmentToken(ctx, machineID, "system", VMEnrollmentTTL)
}

// CreateEnrollmentToken makes a one-time token that enrolls an agent as target: a VM (an
// existing Microsoft.Compute/virtualMachines or Microsoft.HybridCompute/machines), or a
// resource group, in which the agent's host becomes a Microsoft.HybridCompute/machines.
func (s *Service) CreateEnrollmentToken(ctx context.Context, target resource.ID, by string, ttl time.Duration) (string, error) {
	if target.Kind() != resource.KindResourceGroup && !IsMachineType(target.Type()) {
		return "", fmt.Errorf("fleet: enrollment token: %w", resource.Errorf(resource.CodeInvalidParameter, "target",
			"an agent enrolls as a virtual machine, a hybrid machine, or into a resource group; %s is none of them", target))
	}
	if ttl <= 0 || ttl > 90*24*time.Hour {
		return "", fmt.Errorf("fleet: enrollment token: %w", resource.Errorf(resource.CodeInvalidParameter, "expiresIn", "must be more than 0 and at most 90 days, is %s", ttl))
	}
	secret, err := newSecret(EnrollmentTokenPrefix)
	if err != nil {
		return "", fmt.Errorf("fleet: enrollment token: %w", err)
	}
	now := s.opts.Now().UTC()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, target); err != nil {
			return err
		}
		return tx.CreateEnrollmentToken(ctx, store.EnrollmentToken{Hash: HashSecret(secret), Target: target.String(), CreatedBy: by,
			CreatedAt: now, ExpiresAt: now.Add(ttl)})
	})
	if err != nil {
		return "", fmt.Errorf("fleet: enrollment token for %s: %w", target, err)
	}
	return secret, nil
}

// hostnameRe is a host name a hybrid machine may be named after.
var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})$`)

// Enroll trades a one-time token for a credential. A token for a resource group creates (or
// takes over) the Microsoft.HybridCompute/machines named req.Name, else after the host.
func (s *Service) Enroll(ctx context.Context, req agentproto.EnrollRequest) (agentproto.EnrollResponse, error) {
	fail := func(err error) (agentproto.EnrollResponse, error) {
		return agentproto.EnrollResponse{}, fmt.Errorf("fleet: enroll: %w", err)
	}
	if req.Version != agentproto.Version {
		return fail(resource.Errorf(resource.CodeInvalidRequestContent, "version", "the agent speaks protocol %d, this server %d", req.Version, agentproto.Version))
	}
	if !strings.HasPrefix(req.Token, EnrollmentTokenPrefix) {
		return fail(resource.Errorf(resource.CodeAuthenticationFailed, "token", "this is not an enrollment token (they begin with %s)", EnrollmentTokenPrefix))
	}
	hash := HashSecret(req.Token)
	now := s.opts.Now().UTC()
	credential, err := newSecret(CredentialPrefix)
	if err != nil {
		return fail(err)
	}
	credHash := HashSecret(credential)
	var machineID resource.ID
	var hybrid *resource.Resource
	// The token is used, and the machine recorded, in one transaction. A hybrid machine's
	// resource is written through the control plane first (so that policies judge it),
	// which needs a transaction of its own: the first pass only peeks at the token, and
	// rolls back, so a failure to create the resource leaves the token usable.
	errPeeked := errors.New("peeked")
	err = s.store.Update(ctx, func(tx store.Tx) error {
		tok, err := tx.UseEnrollmentToken(ctx, hash, now)
		if err != nil {
			return err
		}
		target, err := resource.Parse(tok.Target)
		if err != nil {
			return err
		}
		if target.Kind() != resource.KindResourceGroup {
			r, err := tx.Get(ctx, target)
			if err != nil {
				return resource.Errorf(resource.CodeNotFound, "token", "the machine this token enrolls, %s, no longer exists", target)
			}
			if machineID, err = resource.Parse(r.ID); err != nil {
				return err
			}
			return tx.PutMachine(ctx, store.Machine{ID: machineID.String(), CredentialHash: credHash, EnrolledAt: now})
		}
		rg, err := tx.Get(ctx, target)
		if err != nil {
			return err
		}
		name := req.Name
		if name == "" {
			name, _, _ = strings.Cut(req.Facts.Hostname, ".")
		}
		if !hostnameRe.MatchString(name) {
			return resource.Errorf(resource.CodeInvalidParameter, "name", "%q is not a machine name (letters, digits and '-', at most 63)", name)
		}
		machineID = target.Child(TypeHybrid, name)
		hybrid = hybridResource(machineID, rg.Location, req, now)
		return errPeeked
	})
	if err != nil && !errors.Is(err, errPeeked) {
		return fail(err)
	}
	if hybrid != nil {
		if s.writer == nil {
			return fail(errors.New("no writer to create the hybrid machine"))
		}
		if err := s.putHybrid(ctx, hybrid); err != nil {
			return fail(err)
		}
		if err := s.store.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.UseEnrollmentToken(ctx, hash, now); err != nil {
				return err
			}
			return tx.PutMachine(ctx, store.Machine{ID: machineID.String(), CredentialHash: credHash, EnrolledAt: now})
		}); err != nil {
			return fail(err)
		}
	}
	m, err := s.store.Machine(ctx, machineID.String())
	if err != nil {
		return fail(err)
	}
	s.mu.Lock()
	s.indexLocked(m)
	s.mu.Unlock()
	s.log.Info("agent enrolled", "machine", machineID.String(), "host", req.Facts.Hostname, "agent", req.Facts.AgentVersion)
	return agentproto.EnrollResponse{Version: agentproto.Version, MachineID: machineID.String(), Credential: credential,
		ReportIntervalSeconds: int(s.opts.ReportInterval / time.Second)}, nil
}

// putHybrid creates the hybrid machine, or refreshes the facts of one that exists (a host
// enrolled again keeps its tags and assignments).
func (s *Service) putHybrid(ctx context.Context, r *resource.Resource) error {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return err
	}
	err = s.writer.Update(ctx, id, func(old *resource.Resource) (bool, error) {
		var props map[string]any
		if err := json.Unmarshal(old.Properties, &props); err != nil || props == nil {
			props = map[string]any{}
		}
		var fresh map[string]any
		_ = json.Unmarshal(r.Properties, &fresh)
		for k, v := range fresh {
			props[k] = v
		}
		raw, err := json.Marshal(props)
		if err != nil {
			return false, err
		}
		old.Properties = raw
		return true, nil
	})
	if store.IsNotFound(err) {
		return s.writer.Put(ctx, r)
	}
	return err
}

// hybridResource is the Microsoft.HybridCompute/machines an enrolling host becomes: a pet
// unless someone tags it otherwise, with the facts Azure Arc shows for a machine.
func hybridResource(id resource.ID, location string, req agentproto.EnrollRequest, now time.Time) *resource.Resource {
	f := req.Facts
	props := map[string]any{
		"osType":           "linux",
		"osName":           f.OSRelease["ID"],
		"osVersion":        f.OSRelease["VERSION_ID"],
		"osSku":            f.OSRelease["PRETTY_NAME"],
		"agentVersion":     f.AgentVersion,
		"machineFqdn":      f.Hostname,
		"status":           "Connected",
		"lastStatusChange": now.Format(time.RFC3339),
	}
	raw, _ := json.Marshal(props)
	return &resource.Resource{ID: id.String(), Type: TypeHybrid, Name: id.Name(), Location: location,
		Tags: map[string]string{"serviceModel": "pet"}, Properties: raw}
}
