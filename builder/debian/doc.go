// Package debian builds a Debian root filesystem from the machine's own apt mirror with
// mmdebstrap.
//
// The mirror is whatever the machine's apt sources name (/etc/apt/sources.list.d/*.sources
// in deb822 form, or /etc/apt/sources.list): gild never carries a mirror's address of its
// own, so a build uses the same mirror, proxy or snapshot the machine's apt does. The date
// of each suite's Release file on that mirror dates the base image: the newest of the three
// suites (bookworm, bookworm-updates, bookworm-security) names the image version
// (2026.11.20), and it keys the rootfs cache together with mmdebstrap's arguments, so a
// second build from an unchanged mirror unpacks a tarball in seconds instead of running
// mmdebstrap again.
package debian
