// Package notify tells people what mgo did: deploy, rollback, sync and
// drift events go, as the routes of mygitops.yaml say, to Slack, signed
// generic webhooks, and back to the source commit as a GitLab commit
// status or a GitHub deployment status.
//
// Delivery never hurts a deploy: Dispatcher.Notify only puts the event in a
// bounded queue (a full queue drops it); workers send it with a deadline
// per attempt, retry with backoff, and drop it with a log line and
// mgo_notifications_total{result="dropped"} when the receiver stays down.
package notify
