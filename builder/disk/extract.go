package disk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gildhq/gild/builder"
)

// Linux partition type GUIDs that may hold a root filesystem.
var rootTypes = map[string]bool{
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": true, // root, x86-64 (what Assemble writes)
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": true, // Linux filesystem data
}

// PartitionTable is what sfdisk --json reports of a disk.
type PartitionTable struct {
	Label      string `json:"label"`
	SectorSize int64  `json:"sectorsize"`
	Partitions []struct {
		Start int64  `json:"start"`
		Size  int64  `json:"size"`
		Type  string `json:"type"`
		Name  string `json:"name"`
	} `json:"partitions"`
}

// ParsePartitionTable reads sfdisk --json output.
func ParsePartitionTable(data []byte) (*PartitionTable, error) {
	var v struct {
		PartitionTable PartitionTable `json:"partitiontable"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("read the partition table: %w", err)
	}
	if v.PartitionTable.SectorSize == 0 {
		v.PartitionTable.SectorSize = 512
	}
	return &v.PartitionTable, nil
}

// RootPartition picks the partition that holds the root filesystem: the largest one of a
// Linux root or data type (an image from elsewhere may carry several, such as /boot).
// It returns the byte offset and size.
func (pt *PartitionTable) RootPartition() (offset, size int64, err error) {
	best := -1
	for i, p := range pt.Partitions {
		if rootTypes[strings.ToUpper(p.Type)] || p.Type == "83" {
			if best < 0 || p.Size > pt.Partitions[best].Size {
				best = i
			}
		}
	}
	if best < 0 {
		return 0, 0, fmt.Errorf("the disk has no Linux root partition (%d partitions)", len(pt.Partitions))
	}
	p := pt.Partitions[best]
	return p.Start * pt.SectorSize, p.Size * pt.SectorSize, nil
}

// ExtractRootfs copies the root filesystem of the raw disk image into dir, so that an
// image from a URL or a gallery can be customized as a base built here is: the root
// partition is mounted read-only through a loop device at its offset (no partition
// devices, no /dev/nbd), copied with everything it holds, and unmounted again.
func ExtractRootfs(ctx context.Context, r *builder.Runner, m Mounter, raw, dir string) (err error) {
	out, err := r.Output(ctx, builder.Command{Path: "sfdisk", Args: []string{"--json", raw}, Tag: "sfdisk"})
	if err != nil {
		return fmt.Errorf("read the partition table of %s: %w", filepath.Base(raw), err)
	}
	pt, err := ParsePartitionTable(out)
	if err != nil {
		return err
	}
	offset, size, err := pt.RootPartition()
	if err != nil {
		return err
	}
	mnt, err := os.MkdirTemp(filepath.Dir(dir), "extract-")
	if err != nil {
		return err
	}
	var undo builder.Cleanup
	defer undo.RunInto(context.WithoutCancel(ctx), &err)
	undo.Push("remove the mount point", func(context.Context) error { return os.Remove(mnt) })
	if err := m.Mount(ctx, Mount{Source: raw, Target: mnt, FSType: "auto",
		Options: []string{"loop", "ro", "offset=" + strconv.FormatInt(offset, 10), "sizelimit=" + strconv.FormatInt(size, 10)}}); err != nil {
		return fmt.Errorf("mount the root partition: %w", err)
	}
	undo.Push("unmount the root partition", func(ctx context.Context) error { return m.Unmount(ctx, mnt) })
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// cp -a keeps owners, modes, links, devices and extended attributes; the source is
	// read-only, so a failure leaves it as it was.
	if err := r.Run(ctx, builder.Command{Path: "cp", Args: []string{"-a", "--one-file-system", mnt + "/.", dir + "/"}, Tag: "extract"}); err != nil {
		return fmt.Errorf("copy the root filesystem: %w", err)
	}
	r.Logf("extract", "copied the root filesystem (partition at byte %d, %d MiB)", offset, size>>20)
	return nil
}
