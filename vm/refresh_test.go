package vm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// tagged creates a VM with the serviceModel tag and waits for it to run.
func (h *harness) tagged(name, model, image string) resource.ID {
	h.t.Helper()
	id := h.rg.Child(TypeVM, name)
	r := &resource.Resource{ID: id.String(), Location: "local", Tags: map[string]string{"serviceModel": model},
		Properties: json.RawMessage(fmt.Sprintf(`{"storageProfile":{"imageReference":{"id":%q}},"osProfile":{"adminUsername":"ops"}}`, image))}
	if _, _, err := h.cp.Put(h.ctx, controlplane.System, r, store.Precondition{}); err != nil {
		h.t.Fatalf("create %s: %v", name, err)
	}
	h.vms.Wait()
	return id
}

func exactVersion(p map[string]any) string {
	sp, _ := p["storageProfile"].(map[string]any)
	ir, _ := sp["imageReference"].(map[string]any)
	v, _ := ir["exactVersion"].(string)
	return v
}

// TestRefresh: with a newer version published, the cattle is due and is replaced by a VM
// of the same name, tags and assignments on the new version; the pet is only reported; a
// dry run changes nothing; a scope's cycle tag decides age.
func TestRefresh(t *testing.T) {
	h := newHarness(t, false, nil, nil)
	cattle := h.tagged("cattle-1", "cattle", h.def.String())
	pet := h.tagged("pet-1", "pet", h.version.String())
	assignment := cattle.Child("Microsoft.GuestConfiguration/guestConfigurationAssignments", "ssh")
	h.put(assignment.String(), "", `{"guestConfiguration":{"name":"LinuxSshServerSecurityBaseline","assignmentType":"Audit"}}`)
	f := &Refresher{Store: h.st, Gallery: h.images, Writer: controlplane.SystemWriter{Service: h.cp}, ReadyTimeout: time.Minute}

	// Nothing is due yet: both are new and on the latest version.
	rep, err := f.Refresh(h.ctx, h.rg, RefreshOptions{DryRun: true})
	if err != nil || len(rep.Due) != 0 || len(rep.Pets) != 0 {
		t.Fatalf("fresh VMs due: %+v %v", rep, err)
	}
	// 40 days on, with the default 30-day cycle both are old; a 60-day cycle on the
	// resource group makes neither due.
	f.Now = func() time.Time { return time.Now().Add(40 * 24 * time.Hour) }
	rep, _ = f.Refresh(h.ctx, h.rg, RefreshOptions{DryRun: true})
	if len(rep.Due) != 1 || rep.Due[0].ID != cattle.String() || len(rep.Pets) != 1 || !strings.Contains(rep.Due[0].Reason, "30-day cycle") {
		t.Fatalf("40 days on: %+v", rep)
	}
	rgRes, err := h.st.Get(h.ctx, h.rg)
	if err != nil {
		t.Fatal(err)
	}
	rgRes.Tags = map[string]string{CycleTag: "60"}
	rgRes.ETag, rgRes.SystemData = "", nil
	if _, _, err := h.cp.Put(h.ctx, controlplane.System, rgRes, store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if rep, _ = f.Refresh(h.ctx, h.rg, RefreshOptions{DryRun: true}); len(rep.Due) != 0 {
		t.Fatalf("due within the scope's 60-day cycle: %+v", rep)
	}
	f.Now = nil

	// A newer version makes both stale; only the cattle is due.
	newer := h.def.Child("versions", "1.0.1")
	h.put(newer.String(), "local", fmt.Sprintf(`{"publishingProfile":{"targetRegions":[{"name":"local"}]},
		"storageProfile":{"osDiskImage":{"sha256":%q,"sizeInBytes":%d,"format":"qcow2"}}}`, h.digest, 1<<20))
	petBefore, cattleBefore := h.props(pet)["vmId"], h.props(cattle)["vmId"]
	rep, err = f.Refresh(h.ctx, h.rg, RefreshOptions{DryRun: true})
	if err != nil || len(rep.Due) != 1 || len(rep.Pets) != 1 || !strings.Contains(rep.Pets[0].Reasons[0], "1 behind") || len(rep.Replaced) != 0 {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	if h.props(cattle)["vmId"] != cattleBefore {
		t.Fatal("a dry run replaced the cattle")
	}
	rep, err = f.Refresh(h.ctx, h.rg, RefreshOptions{})
	if err != nil || len(rep.Replaced) != 1 || rep.Replaced[0].ToVersion != "1.0.1" || rep.Replaced[0].FromVersion != "1.0.0" || len(rep.Failed) != 0 {
		t.Fatalf("refresh: %+v %v", rep, err)
	}
	h.vms.Wait()
	p := h.props(cattle)
	if p["vmId"] == cattleBefore || exactVersion(p) != "1.0.1" || p["provisioningState"] != ProvisioningSucceeded {
		t.Fatalf("the replaced cattle: %v", p)
	}
	r, _ := h.st.Get(h.ctx, cattle)
	if r.Tags["serviceModel"] != "cattle" {
		t.Errorf("the replacement lost its tags: %v", r.Tags)
	}
	if _, err := h.st.Get(h.ctx, assignment); err != nil {
		t.Errorf("the replacement lost its machine configuration: %v", err)
	}
	if h.props(pet)["vmId"] != petBefore || exactVersion(h.props(pet)) != "1.0.0" {
		t.Errorf("the pet was touched: %v", h.props(pet))
	}
	if _, err := f.Refresh(h.ctx, h.rg, RefreshOptions{MaxUnavailable: -1}); err == nil {
		t.Error("a negative maxUnavailable was accepted")
	}
}
