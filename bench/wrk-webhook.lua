-- bench/wrk-webhook.lua: one signed webhook request, sent again and again, for
-- bench/settle.sh's ceiling of bench/webhook-receiver.py. The caller prepares
-- it in the environment: PW_HOOK_BODY (an event of the run, as the dispatcher
-- sends it), PW_HOOK_ID, PW_HOOK_TIMESTAMP and PW_HOOK_SIGNATURE (signed with
-- the run's secret), so the receiver does the same work as for a delivery.
wrk.method = "POST"
wrk.body = os.getenv("PW_HOOK_BODY")
wrk.headers["content-type"] = "application/json"
wrk.headers["webhook-id"] = os.getenv("PW_HOOK_ID")
wrk.headers["webhook-timestamp"] = os.getenv("PW_HOOK_TIMESTAMP")
wrk.headers["webhook-signature"] = os.getenv("PW_HOOK_SIGNATURE")
