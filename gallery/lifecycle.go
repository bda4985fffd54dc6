package gallery

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Entry is one version of a definition, as lifecycle and resolution see it.
type Entry struct {
	ID      string
	Version Version
	Props   *VersionProperties
}

func (e Entry) published() time.Time {
	if p := e.Props.PublishingProfile.PublishedDate; p != nil {
		return *p
	}
	return time.Time{}
}

// sortNewestFirst orders entries by version, highest first.
func sortNewestFirst(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return b.Version.Compare(a.Version) })
}

const day = 24 * time.Hour

// endOfLife says whether, and why, version e's life has ended at now.
func endOfLife(def *DefinitionProperties, e Entry, now time.Time) (bool, string) {
	if d := e.Props.PublishingProfile.EndOfLifeDate; d != nil {
		if !now.Before(*d) {
			return true, "its end-of-life date " + d.UTC().Format(time.DateOnly) + " has passed"
		}
		return false, ""
	}
	if def != nil && def.EndOfLifeDate != nil && !now.Before(*def.EndOfLifeDate) {
		return true, "the image definition's end-of-life date " + def.EndOfLifeDate.UTC().Format(time.DateOnly) + " has passed"
	}
	if def != nil && def.LifecyclePolicy != nil && def.LifecyclePolicy.EndOfLifeAfterDays > 0 && !e.published().IsZero() {
		n := def.LifecyclePolicy.EndOfLifeAfterDays
		if !now.Before(e.published().Add(time.Duration(n) * day)) {
			return true, fmt.Sprintf("it was published more than %d days ago (lifecyclePolicy.endOfLifeAfterDays)", n)
		}
	}
	return false, ""
}

// States computes the lifecycle state of each published version of one definition at now,
// keyed by version string: active, then aged once a newer version that is offered as
// latest is published, deprecated by the definition's lifecycle policy (by age or beyond
// the newest K, never the newest retainAtLeast), and endOfLife once its date is reached.
// Versions not yet provisioned have no state.
func States(def *DefinitionProperties, versions []Entry, now time.Time) map[string]Lifecycle {
	es := make([]Entry, 0, len(versions))
	for _, e := range versions {
		if e.Props.ProvisioningState == ProvisioningSucceeded {
			es = append(es, e)
		}
	}
	sortNewestFirst(es)
	out := make(map[string]Lifecycle, len(es))
	var lp *LifecyclePolicy
	if def != nil {
		lp = def.LifecyclePolicy
	}
	var newestOffered *Entry // the highest live version offered as latest so far
	live := 0                // live versions seen so far, newest first
	for i := range es {
		e := es[i]
		if dead, why := endOfLife(def, e, now); dead {
			out[e.Version.String()] = Lifecycle{State: StateEndOfLife, Reason: why}
			continue
		}
		rank := live
		live++
		var l Lifecycle
		switch {
		case rank >= lp.retain() && lp != nil && lp.DeprecateAfterDays > 0 && !e.published().IsZero() &&
			!now.Before(e.published().Add(time.Duration(lp.DeprecateAfterDays)*day)):
			l = Lifecycle{State: StateDeprecated, Reason: fmt.Sprintf("it was published more than %d days ago (lifecyclePolicy.deprecateAfterDays)", lp.DeprecateAfterDays)}
		case rank >= lp.retain() && lp != nil && lp.KeepNewest > 0 && rank >= lp.KeepNewest:
			l = Lifecycle{State: StateDeprecated, Reason: fmt.Sprintf("it is older than the newest %d versions (lifecyclePolicy.keepNewest)", lp.KeepNewest)}
		case newestOffered != nil:
			l = Lifecycle{State: StateAged, Reason: "a newer version, " + newestOffered.Version.String() + ", is published"}
		default:
			l = Lifecycle{State: StateActive}
		}
		out[e.Version.String()] = l
		if newestOffered == nil && !e.Props.PublishingProfile.ExcludeFromLatest {
			newestOffered = &es[i]
		}
	}
	return out
}

// Available reports whether e is fully replicated in region; region "" asks whether it is
// fully replicated in any region.
func Available(e Entry, region string) bool {
	rs := e.Props.ReplicationStatus
	if rs == nil {
		return false
	}
	for _, s := range rs.Summary {
		if (region == "" || s.Region == region) && s.State == ReplicationCompleted {
			return true
		}
	}
	return false
}

// Resolve finds the version ref names among versions: "latest" (or "") is the highest
// version not excluded from latest (in region, when one is given), not past its end of life
// and fully replicated in region; "X.Y.Z" is that version, which must be published and,
// when a region is given, fully replicated there. The error says why nothing matched.
func Resolve(def *DefinitionProperties, versions []Entry, ref, region string, now time.Time) (Entry, error) {
	if ref != "" && !strings.EqualFold(ref, "latest") {
		want, err := ParseVersion(ref)
		if err != nil {
			return Entry{}, err
		}
		for _, e := range versions {
			if e.Version != want {
				continue
			}
			if e.Props.ProvisioningState != ProvisioningSucceeded {
				return Entry{}, fmt.Errorf("version %s is not published (provisioningState %s)", ref, e.Props.ProvisioningState)
			}
			if region != "" && !Available(e, region) {
				return Entry{}, fmt.Errorf("version %s is not fully replicated in region %s yet", ref, region)
			}
			return e, nil
		}
		return Entry{}, fmt.Errorf("version %s does not exist", ref)
	}
	es := slices.Clone(versions)
	sortNewestFirst(es)
	states := States(def, es, now)
	var why []string
	for _, e := range es {
		v := e.Version.String()
		switch {
		case e.Props.ProvisioningState != ProvisioningSucceeded:
			why = append(why, v+" is not published")
		case states[v].State == StateEndOfLife:
			why = append(why, v+" is past its end of life")
		case e.Props.ExcludedIn(region):
			why = append(why, v+" is excluded from latest")
		case !Available(e, region):
			if region == "" {
				why = append(why, v+" is not fully replicated in any region")
			} else {
				why = append(why, v+" is not fully replicated in region "+region)
			}
		default:
			return e, nil
		}
	}
	where := ""
	if region != "" {
		where = " in region " + region
	}
	if len(why) == 0 {
		return Entry{}, fmt.Errorf("no version is published%s", where)
	}
	return Entry{}, fmt.Errorf("no version qualifies as latest%s: %s", where, strings.Join(why, "; "))
}
