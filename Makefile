# gild's build, test and demo entry points. GNU make, bash.
#
#   make demo       build, start a demo server on 127.0.0.1:8080 with sample data
#   make demo-stop  stop it
#   make test       install what the tests need, check formatting, vet, run every test
#                   (the dashboard's screenshots land in .artifacts/screenshots)
#   make build      build bin/gild
#   make deps       install the system packages the tests need (apt, when missing)
#   make clean      stop the demo, remove bin/ and .data/

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

# Go from the official tarball lives in /usr/local/go; CI does not put it on PATH.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

# System packages: PostgreSQL's server binaries for the store tests (the test harness starts
# a private cluster from them), and what fetching Go modules needs. Then the image builder's
# tools (builder/...): mmdebstrap for the Debian base, tar for its cache, QEMU and qemu-img
# for disks and the validation boot, OVMF as the UEFI firmware, GRUB's x86_64-efi modules
# for the boot loader, and the partition and filesystem tools that assemble the disk
# without mounting it (sfdisk from fdisk, mkfs.ext4, mkfs.vfat, mtools' mcopy). Last, the
# dashboard's browser tests (web/browser_test.go) drive Debian's chromium headless, with a
# font to draw the pages' text in their screenshots.
DEB_PACKAGES := postgresql ca-certificates git \
  mmdebstrap tar qemu-system-x86 qemu-utils ovmf grub-efi-amd64-bin grub-common \
  fdisk e2fsprogs dosfstools mtools util-linux \
  chromium fonts-dejavu-core

.PHONY: deps build test demo demo-stop clean

deps:
	@missing=(); \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$$p"); \
	done; \
	if (( $${#missing[@]} > 0 )); then \
	  if [[ $$(id -u) -eq 0 ]]; then sudo=(); \
	  elif command -v sudo >/dev/null; then sudo=(sudo -n); \
	  else echo "make deps: need root or sudo to install: $${missing[*]}" >&2; exit 1; fi; \
	  echo "make deps: installing $${missing[*]}"; \
	  "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null; \
	  "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$${missing[@]}" </dev/null; \
	fi
	@command -v $(GO) >/dev/null || { echo "make deps: Go is not installed (expected /usr/local/go/bin/go or go on PATH)" >&2; exit 1; }
	@echo "make deps: ok ($$($(GO) version))"

build:
	CGO_ENABLED=0 $(GO) build -o bin/gild ./cmd/gild
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/gild-agent ./cmd/gild-agent

test: deps
	@unformatted=$$(gofmt -l . | grep -v '/testdata/' || true); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt: these files need formatting (run gofmt -w):" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	GILD_REQUIRE_POSTGRES=1 GILD_REQUIRE_BROWSER=1 $(GO) test -count=1 -timeout 30m ./...

demo: deps build
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop

clean: demo-stop
	rm -rf bin .data
