// Package main is the gild command; everything it does lives in package cli.
package main

import (
	"os"

	"github.com/gildhq/gild/cli"
)

func main() {
	os.Exit(cli.Execute())
}
