// Package values edits the image fields of gitops values files without
// disturbing anything else in them.
//
// A deploy request names a source repository (the trigger repo) and an
// image. Every values file of the cluster whose __mygitops header lists the
// trigger repo under images gets that image, in the form the entry already
// uses:
//
//	__mygitops:
//	  images:
//	    gitlab.com/acme/app: &app
//	      repository: registry.acme.io/acme/app   # repository+tag form
//	      tag: "1.4.1"
//	    gitlab.com/acme/worker:
//	      image: registry.acme.io/acme/worker:2.0.0   # single-string form
//	app:
//	  image:
//	    <<: *app   # the chart values reach the header through anchors and merges
//
// Edits are surgical: the file is parsed only to find the byte positions of
// the scalars to change, and their text is replaced in place. Comments,
// anchors, key order, indentation, line endings, document markers and the
// style of each scalar stay as they were; a plain scalar whose new value
// would read as something other than that string (1.10, true, 1e3, ...) is
// double-quoted. Every edit is checked by parsing the result and comparing it
// with the original: anything but the edited scalars differing is refused.
// Values reached through aliases or merge keys are not edited (the anchor may
// be used elsewhere): such files are refused with the line to fix.
//
// SetImage edits one file in memory; EditCluster edits every matching file of
// a cluster and writes them only when all edits succeeded. docs/image-edits.md
// has the rules for users.
package values
