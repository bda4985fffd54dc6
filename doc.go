// Package gild is the root of gild, a self-hosted golden-image factory and VM compliance
// tracker. The code lives in the packages below it (see DESIGN.md beside the repository);
// this package holds only the tests that keep their structure honest: one package doc per
// package, and imports that point down the layers and never up.
package gild
