package acs

import (
	"slices"
	"strings"
)

// ChatAPIVersions are the Chat api-versions Threadline answers, newest first.
// They share one wire shape for every field Threadline implements; fields that
// arrived later (thread metadata, retention) are simply absent in old clients.
var ChatAPIVersions = []string{"2025-03-15", "2024-03-07", "2023-11-07", "2021-09-07"}

// IdentityAPIVersions are the Identity api-versions Threadline answers.
var IdentityAPIVersions = []string{"2023-10-01", "2022-10-01", "2021-03-07"}

// VersionProblem returns "" when v is one of supported, or a message saying
// what is wrong and what would be accepted.
func VersionProblem(v string, supported []string) string {
	switch {
	case v == "":
		return "The api-version query parameter is required; use api-version=" + supported[0] + "."
	case slices.Contains(supported, v):
		return ""
	default:
		return "api-version " + v + " is not supported; use one of " + strings.Join(supported, ", ") + "."
	}
}
