-- wrk script: POST GraphQL documents and count every answer that is not a clean success.
--
-- BENCH_REQUESTS names a file with one request per line: "<bearer token or empty>\t<JSON
-- body>". Each thread starts at its own line and cycles through the file, so several
-- documents or accounts can be mixed. An answer counts as an error when its HTTP status
-- is not 200 or its body holds a GraphQL "errors" member; done() prints one JSON line
-- (prefixed BENCH_RESULT) that bench/run reads.

local threads = {}
local counter = 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local function load_requests()
    local path = os.getenv("BENCH_REQUESTS")
    local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
    local list = {}
    for line in file:lines() do
        if #line > 0 then
            local tab = string.find(line, "\t", 1, true)
            local token = string.sub(line, 1, tab - 1)
            local body = string.sub(line, tab + 1)
            local headers = { ["Content-Type"] = "application/json" }
            if #token > 0 then
                headers["Authorization"] = "Bearer " .. token
            end
            table.insert(list, wrk.format("POST", "/graphql", headers, body))
        end
    end
    file:close()
    assert(#list > 0, "no requests in " .. path)
    return list
end

function init(args)
    requests_list = load_requests()
    position = (id * 7919) % #requests_list
    ok = 0
    gql_errors = 0
    http_errors = 0
    sample = ""
end

function request()
    position = position % #requests_list + 1
    return requests_list[position]
end

function response(status, headers, body)
    if status ~= 200 then
        http_errors = http_errors + 1
        if #sample == 0 then sample = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 300) end
    elseif string.find(body, '"errors"', 1, true) then
        gql_errors = gql_errors + 1
        if #sample == 0 then sample = string.sub(body, 1, 300) end
    else
        ok = ok + 1
    end
end

local function json_string(s)
    s = string.gsub(s, '[%c"\\]', function(c)
        return string.format("\\u%04x", string.byte(c))
    end)
    return '"' .. s .. '"'
end

function done(summary, latency, requests)
    local total_ok, total_gql, total_http, first_sample = 0, 0, 0, ""
    for _, t in ipairs(threads) do
        total_ok = total_ok + (t:get("ok") or 0)
        total_gql = total_gql + (t:get("gql_errors") or 0)
        total_http = total_http + (t:get("http_errors") or 0)
        local s = t:get("sample") or ""
        if #first_sample == 0 and #s > 0 then first_sample = s end
    end
    local e = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"requests": %d, "duration_us": %d, "ok": %d, "graphql_errors": %d, "http_errors": %d, ' ..
        '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
        '"mean_us": %.1f, "error_sample": %s}\n',
        summary.requests, summary.duration, total_ok, total_gql, total_http,
        e.connect + e.read + e.write, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        latency.mean, json_string(first_sample)))
end
