// Package main is the gild command; everything it does lives in package cli.
package main

import (
	"os"

	_ "github.com/gildhq/gild/blob/cloud" // s3://, azblob:// and gs:// regions
	"github.com/gildhq/gild/cli"
)

func main() {
	os.Exit(cli.Execute())
}
