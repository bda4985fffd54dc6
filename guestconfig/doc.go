// Package guestconfig is gild's machine configuration: named, versioned sets of checks
// (package check) that an assignment runs on a machine, and the rules of the
// Microsoft.GuestConfiguration/guestConfigurationAssignments resources that make those
// assignments, so that Azure Policy's machine-configuration policies work unchanged.
//
// # Configurations
//
// A Configuration is what Azure calls a configuration package: a name (with aliases), a
// Major.Minor.Patch version, parameters and checks. Its checks are JSON in check.Parse's
// form whose string values may hold ${short} placeholders; Render puts an assignment's
// values (or the parameters' defaults) in and validates the result as check.Parse does.
// A parameter has Azure's full configurationParameter name, such as "Ensure that the SSH
// PermitRootLogin is configured;DesiredObjectValue", and a short name, the one of the
// policy parameter that feeds it ("permitRootLogin"); an assignment may use either. A
// configuration with ImageBaseline runs, instead of checks of its own, the checks the
// machine's image was validated with.
//
// The built-in configurations are JSON files embedded from builtin/:
// LinuxSshServerSecurityBaseline (alias SetLinuxSshServerSecurityBaseline, the DINE
// policy's name) with the parameters of Azure's SSH posture control policies,
// PasswordPolicy_msid232 (no account without a password) and gild-image-baseline.
//
// # Assignments
//
// A guestConfigurationAssignment is a child resource of a machine. Its properties, as a
// client or a deployIfNotExists policy sends them, are read by ParseAssignment:
// guestConfiguration {name, version, assignmentType, configurationParameter [{name,
// value}]}, as Azure has them. The fields the server maintains (complianceStatus,
// latestAssignmentReport, parameterHash, ...) are ignored on input; Normalize computes the
// two hashes. parameterHash is Azure's: base64 of the "name=value" pairs as the
// assignment gives them, which auditIfNotExists policies compare with a hash of their
// own parameters, so that an assignment with other values does not count as compliant.
// Agent turns the properties into what the agent runs (agentproto.Assignment): the
// rendered checks and a hash that changes whenever what it must do does. The assignment
// types are Azure's: Audit reports, ApplyAndMonitor corrects once and then reports drift,
// ApplyAndAutoCorrect corrects whenever a check fails.
package guestconfig
