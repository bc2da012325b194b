-- wrk: POST one signed Intercom-style notification; a distinct X-Delivery per request so
-- every request passes dedupe and is queued (the body and its signature stay the same).
local body = '{"type":"notification_event","id":"notif_bench","topic":"conversation.user.replied","data":{"type":"notification_event_data","item":{"type":"conversation","id":"215"}}}'
local counter = 0
local thread_tag = "t"
function init(args)
  -- a tag unique to this run and thread: earlier runs' dedupe keys must not match
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  thread_tag = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
end
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature"] = os.getenv("BENCH_SIGNATURE")
request = function()
  counter = counter + 1
  wrk.headers["X-Delivery"] = thread_tag .. "-" .. counter
  return wrk.format()
end
