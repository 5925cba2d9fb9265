package reconcile

import "github.com/mygitops/mgo/internal/secrets"

// maskResult hides the values of a release's secrets files in its result:
// a chart may render them anywhere (a ConfigMap, an env var, an
// annotation) and an error may quote them. Everything mgo writes about a
// release (answers, notifications, CLI output) is built from the result.
func maskResult(rr ReleaseResult, m *secrets.Masker) ReleaseResult {
	if m.Empty() {
		return rr
	}
	rr.Error, rr.Note, rr.Recovered = m.Mask(rr.Error), m.Mask(rr.Note), m.Mask(rr.Recovered)
	if rr.Objects != nil {
		objs := make([]ObjectResult, len(rr.Objects))
		for i, o := range rr.Objects {
			o.Message = m.Mask(o.Message)
			objs[i] = o
		}
		rr.Objects = objs
	}
	return rr
}

// maskDiff hides the values of a release's secrets files in its diff (the
// live side of a changed value too: see secrets.Masker.MaskDiff).
func maskDiff(rd ReleaseDiff, m *secrets.Masker) ReleaseDiff {
	if m.Empty() {
		return rd
	}
	rd.Error = m.Mask(rd.Error)
	objs := make([]ObjectDiff, len(rd.Objects))
	for i, o := range rd.Objects {
		o.Diff = m.MaskDiff(o.Diff)
		objs[i] = o
	}
	rd.Objects = objs
	return rd
}
