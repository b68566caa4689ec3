package sanitize_test

import (
	"testing"

	"github.com/threadline/threadline/shared/sanitize"
)

func TestHTML(t *testing.T) {
	tests := map[string]string{
		"<b>hi</b><script>alert(1)</script>":     "<b>hi</b>",
		`<p onclick="steal()">p</p>`:             "<p>p</p>",
		"<i>a</i><ul><li>b</li></ul>":            "<i>a</i><ul><li>b</li></ul>",
		`<a href="javascript:x()">l</a>`:         "l",
		`<img src="https://example.com/a.png">`:  `<img src="https://example.com/a.png">`,
		`<div style="color:red">s</div><iframe>`: "<div>s</div>",
		"<script></script>":                      "",
	}
	h := sanitize.HTML()
	for in, want := range tests {
		if got := h.Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q; want %q", in, got, want)
		}
	}
}
