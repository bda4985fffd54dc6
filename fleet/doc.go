// Package fleet is the server's side of gild's agents: it enrolls them (a one-time token
// traded for a credential of the machine's own), ingests their reports in batched
// transactions, tells them their machine-configuration assignments (long-polled, so a
// change reaches a machine at once), records the events they report (corrections of
// drift, with the value before and after), writes each assignment's compliance into its
// Microsoft.GuestConfiguration/guestConfigurationAssignments resource, and adds what the
// agent saw (the tattoo, the agent's health) to VM documents before policies evaluate them.
//
// It keeps an index of every machine in memory, so that an enrichment during a scan of
// 100,000 VMs is a map lookup, and a report that changes nothing a policy can see costs one
// row write and no evaluation.
package fleet
