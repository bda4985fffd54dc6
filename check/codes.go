package check

// Reason codes. They are stable: reports, policies and dashboards match on them, so a
// code is never renamed or reused for another meaning.
const (
	// Any kind: the check could not be evaluated (status Error).
	CodeInvalidCheck = "InvalidCheck" // the check was not validated and does not validate
	CodeReadError    = "ReadError"    // a file or directory could not be read
	CodeNotLive      = "NotLive"      // the check needs the running system, and the root is an offline one
	CodeUnknownUser  = "UnknownUser"  // an owner named by the check is not in the root's /etc/passwd
	CodeUnknownGroup = "UnknownGroup" // a group named by the check is not in the root's /etc/group
	CodeFileTooLarge = "FileTooLarge" // a file is too large to read its contents
	CodeCanceled     = "Canceled"     // the evaluation was canceled before it finished

	// file (FileMissing also for lineInFile)
	CodeFileMissing             = "FileMissing"
	CodeFilePresent             = "FilePresent"
	CodeFileNotRegular          = "FileNotRegular"
	CodeFileContentsMismatch    = "FileContentsMismatch"
	CodeFileContentsMissingText = "FileContentsMissingText"
	CodeFileContentsNoMatch     = "FileContentsNoMatch"
	CodeFileModeMismatch        = "FileModeMismatch"
	CodeFileModeTooPermissive   = "FileModeTooPermissive"
	CodeFileOwnerMismatch       = "FileOwnerMismatch"
	CodeFileGroupMismatch       = "FileGroupMismatch"

	// lineInFile
	CodeLineMissing  = "LineMissing"
	CodeLinePresent  = "LinePresent"
	CodeLineMismatch = "LineMismatch"

	// setting
	CodeSettingMismatch = "SettingMismatch"
	CodeSettingMissing  = "SettingMissing"
	CodeSettingPresent  = "SettingPresent"
	CodeIncludeTooDeep  = "IncludeTooDeep" // Error: sshd's Include nests deeper than sshd itself accepts

	// package
	CodePackageNotInstalled    = "PackageNotInstalled"
	CodePackageInstalled       = "PackageInstalled"
	CodePackageVersionMismatch = "PackageVersionMismatch"
	CodePackageVersionTooOld   = "PackageVersionTooOld"

	// service
	CodeServiceNotFound    = "ServiceNotFound"
	CodeServiceNotEnabled  = "ServiceNotEnabled"
	CodeServiceEnabled     = "ServiceEnabled"
	CodeServiceStatic      = "ServiceStatic"
	CodeServiceMasked      = "ServiceMasked"
	CodeServiceNotMasked   = "ServiceNotMasked"
	CodeServiceNotActive   = "ServiceNotActive"
	CodeServiceActive      = "ServiceActive"
	CodeSystemdNotRunning  = "SystemdNotRunning"  // Error: active was asked and systemd is not running
	CodeServiceQueryFailed = "ServiceQueryFailed" // Error: systemctl is-active could not run

	// sysctl
	CodeSysctlNotFound      = "SysctlNotFound"
	CodeSysctlValueMismatch = "SysctlValueMismatch"

	// user
	CodeUserMissing        = "UserMissing"
	CodeUserPresent        = "UserPresent"
	CodeUserUidMismatch    = "UserUidMismatch"
	CodeUserShellMismatch  = "UserShellMismatch"
	CodeUserHomeMismatch   = "UserHomeMismatch"
	CodePasswordNotLocked  = "PasswordNotLocked"
	CodePasswordLocked     = "PasswordLocked"
	CodePasswordEmpty      = "PasswordEmpty"
	CodePasswordNotEmpty   = "PasswordNotEmpty"
	CodeShadowEntryMissing = "ShadowEntryMissing" // Error: a password property was asked and the user has no /etc/shadow line

	// group
	CodeGroupMissing          = "GroupMissing"
	CodeGroupPresent          = "GroupPresent"
	CodeGroupGidMismatch      = "GroupGidMismatch"
	CodeGroupMembersMismatch  = "GroupMembersMismatch"
	CodeGroupMemberMissing    = "GroupMemberMissing"
	CodeGroupMemberUnexpected = "GroupMemberUnexpected"

	// port
	CodePortNotListening = "PortNotListening"
	CodePortListening    = "PortListening"

	// kernelModule
	CodeModuleNotLoaded      = "ModuleNotLoaded"
	CodeModuleLoaded         = "ModuleLoaded"
	CodeModuleNotBlacklisted = "ModuleNotBlacklisted"
	CodeModuleBlacklisted    = "ModuleBlacklisted"

	// command
	CodeCommandExitStatus        = "CommandExitStatus"
	CodeCommandStdoutMissingText = "CommandStdoutMissingText"
	CodeCommandStdoutNoMatch     = "CommandStdoutNoMatch"
	CodeCommandTimeout           = "CommandTimeout"       // Error
	CodeCommandFailedToStart     = "CommandFailedToStart" // Error
)
