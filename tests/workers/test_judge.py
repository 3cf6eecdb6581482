"""The judge client against a real OpenAI-compatible HTTP server on loopback, plus the RAG retrieval metrics."""

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workers.evaluate.judge import (
    RUBRICS,
    JudgeConfig,
    JudgeItem,
    PairItem,
    judge,
    judge_pairwise,
    judge_summary,
    parse_score,
)
from workers.evaluate.rag import rag_items, retrieval_metrics
from workers.train.config import ConfigError


class JudgeServer:
    """An OpenAI-compatible /v1/chat/completions whose answer is ``reply(prompt)``; it records every request.

    ``reply`` returns the message content (str), or (status, body) for an HTTP error, or None to hang until the
    test ends (a judge slower than any timeout)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.reply = lambda prompt: '{"score": 3, "reason": "ok"}'
        self.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        self.release = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                    )
                answer = server.reply(body["messages"][-1]["content"])
                if answer is None:
                    server.release.wait(30)
                    return
                status, content = (200, answer) if isinstance(answer, str) else answer
                if status == 200:
                    payload = {
                        "id": "x",
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                        "usage": server.usage,
                    }
                    data = json.dumps(payload).encode()
                else:
                    data = content.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def prompts(self) -> list[str]:
        return [r["body"]["messages"][-1]["content"] for r in self.requests]

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = JudgeServer()
    yield s
    s.stop()


def config_for(server, **kwargs) -> JudgeConfig:
    return JudgeConfig(base_url=server.url, model="judge-1", **{"max_retries": 0, **kwargs})


def answer_of(prompt: str) -> str:
    return re.search(r"\[Answer\]\n(.*?)\n\n", prompt, re.DOTALL).group(1)


def test_it_scores_every_answer_in_input_order_from_json_replies(server):
    scores = {f"answer {i}": 1 + i % 5 for i in range(10)}

    def reply(prompt):
        score = scores[answer_of(prompt)]
        if score == 2:  # fenced, with chatter around it
            return f'Sure.\n```json\n{{"score": {score}, "reason": "fenced"}}\n```\nDone.'
        return f'{{"score": {score}, "reason": "plain"}}'

    server.reply = reply
    items = [JudgeItem(question="2+2?", answer=a, reference="4") for a in scores]
    seen = []
    verdicts = judge(
        config_for(server, api_key="sekret", concurrency=4),
        "correctness",
        items,
        progress=lambda *a: seen.append(a),
    )
    assert [v.score for v in verdicts] == [float(s) for s in scores.values()]
    assert all(v.error is None for v in verdicts)
    assert {v.reason for v in verdicts} == {"fenced", "plain"}
    assert seen[-1] == (10, 10)
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sekret"
    assert request["body"]["model"] == "judge-1" and request["body"]["temperature"] == 0
    assert "[Expected answer]\n4" in server.prompts()[0]


def test_a_garbage_reply_is_an_error_while_the_others_still_score(server):
    server.reply = lambda p: (
        "I refuse to use JSON." if "bad" in answer_of(p) else '{"score": 4, "reason": "r"}'
    )
    items = [JudgeItem(question="q", answer=a) for a in ["good 1", "bad", "good 2"]]
    verdicts = judge(config_for(server), "helpfulness", items)
    assert [v.score for v in verdicts] == [4.0, None, 4.0]
    assert verdicts[1].error.startswith("unparseable reply:") and "refuse" in verdicts[1].error
    summary = judge_summary(verdicts)
    assert (summary["scored"], summary["errors"], summary["mean_score"]) == (2, 1, 4.0)


@pytest.mark.parametrize("content", ['{"score": 9, "reason": "r"}', '{"score": "great"}', '{"reason": "r"}'])
def test_it_rejects_a_missing_or_out_of_range_score(content):
    score, _, error = parse_score(content)
    assert score is None and error.startswith("unparseable reply")


def test_a_judge_slower_than_the_timeout_gives_a_timeout_verdict_and_the_call_completes(server):
    server.reply = lambda p: None if "slow" in answer_of(p) else '{"score": 5, "reason": "r"}'
    items = [JudgeItem(question="q", answer=a) for a in ["fast", "slow", "fast again"]]
    verdicts = judge(config_for(server, timeout_s=0.5, max_retries=1), "safety", items)
    assert [v.score for v in verdicts] == [5.0, None, 5.0]
    assert verdicts[1].error == "timeout after 0.5 s"
    assert sum("slow" in p for p in server.prompts()) == 2  # the timeout was retried once


def test_cost_comes_from_the_usage_tokens_and_prices(server):
    server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    config = config_for(server, price_input_per_1k=0.01, price_output_per_1k=0.03)
    verdicts = judge(config, "relevance", [JudgeItem(question="q", answer="a")] * 2)
    assert (verdicts[0].prompt_tokens, verdicts[0].completion_tokens) == (1000, 500)
    assert verdicts[0].cost == pytest.approx(0.025)
    summary = judge_summary(verdicts)
    assert summary["total_cost"] == pytest.approx(0.05) and summary["prompt_tokens"] == 2000


def test_a_server_error_is_retried_but_a_client_error_is_not(server):
    calls = {"n": 0}

    def reply(prompt):
        if "client" in answer_of(prompt):
            return 400, '{"error": "bad model"}'
        calls["n"] += 1
        return (503, "busy") if calls["n"] == 1 else '{"score": 2, "reason": "r"}'

    server.reply = reply
    flaky = judge(
        config_for(server, max_retries=1), "helpfulness", [JudgeItem(question="q", answer="server")]
    )
    assert flaky[0].score == 2.0 and calls["n"] == 2
    refused = judge(
        config_for(server, max_retries=3), "helpfulness", [JudgeItem(question="q", answer="client")]
    )
    assert refused[0].score is None and refused[0].error.startswith("HTTP 400")
    assert sum("client" in p for p in server.prompts()) == 1


def test_an_unreachable_endpoint_is_an_error_per_item_not_an_exception():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nobody listens
    config = JudgeConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0)
    verdicts = judge(config, "helpfulness", [JudgeItem(question="q", answer="a")])
    assert verdicts[0].score is None and verdicts[0].error.startswith("connection failed")


def test_faithfulness_puts_the_retrieved_context_in_the_prompt(server):
    server.reply = lambda p: '{"score": 1, "reason": "unsupported"}'
    item = rag_items("Where is the tower?", "In Rome.", ["The tower is in Paris.", "It is 330 m tall."])
    verdicts = judge(config_for(server), "faithfulness", [item])
    assert verdicts[0].score == 1.0
    assert "[1] The tower is in Paris.\n\n[2] It is 330 m tall." in server.prompts()[0]


def test_a_position_biased_judge_only_produces_inconsistent_ties(server):
    server.reply = lambda p: '{"winner": "1", "reason": "the first one"}'
    items = [PairItem(question=f"q{i}", answer_a=f"a{i}", answer_b=f"b{i}") for i in range(3)]
    verdicts = judge_pairwise(config_for(server), items)
    assert [(v.winner, v.consistent, v.first, v.second) for v in verdicts] == [("tie", False, "a", "b")] * 3
    assert len(server.requests) == 6


def test_a_judge_preferring_the_answer_with_the_reference_picks_it_in_both_orders(server):
    def reply(prompt):
        reference = re.search(r"\[Reference answer\]\n(.*?)\n", prompt).group(1)
        first = re.search(r"\[Answer 1\]\n(.*?)\n\[End of answer 1\]", prompt, re.DOTALL).group(1)
        return json.dumps({"winner": "1" if reference in first else "2", "reason": "matches the reference"})

    server.reply = reply
    items = [
        PairItem(question="capital of France?", answer_a="It is Paris.", answer_b="Lyon.", reference="Paris"),
        PairItem(question="2+2?", answer_a="5", answer_b="The answer is 4.", reference="4"),
    ]
    verdicts = judge_pairwise(config_for(server, price_input_per_1k=1.0), items)
    assert [(v.winner, v.consistent, v.error) for v in verdicts] == [("a", True, None), ("b", True, None)]
    assert verdicts[0].cost == pytest.approx(0.02)  # two requests of 10 prompt tokens at 1.0 per 1k
    shown_first = [re.search(r"\[Answer 1\]\n(.*?)\n", p).group(1) for p in server.prompts()]
    assert sorted(shown_first) == sorted(["It is Paris.", "Lyon.", "5", "The answer is 4."])


def test_a_failed_pairwise_request_gives_no_winner(server):
    server.reply = lambda p: "no idea"
    verdicts = judge_pairwise(config_for(server), [PairItem(question="q", answer_a="x", answer_b="y")])
    assert verdicts[0].winner is None and "unparseable reply" in verdicts[0].error


def test_config_validation_lists_every_problem():
    config = JudgeConfig(base_url="ftp://x", model="", timeout_s=0, max_retries=-1, concurrency=0)
    config.price_output_per_1k = -1
    with pytest.raises(ConfigError) as caught:
        config.validate()
    assert set(caught.value.problems) == {
        "base_url",
        "model",
        "timeout_s",
        "max_retries",
        "concurrency",
        "price_output_per_1k",
    }


def test_it_rejects_an_unknown_rubric(server):
    with pytest.raises(ConfigError) as caught:
        judge(config_for(server), "vibes", [JudgeItem(question="q", answer="a")])
    assert "rubric" in caught.value.problems and not server.requests


def test_every_rubric_asks_for_a_json_score():
    assert set(RUBRICS) == {"correctness", "helpfulness", "safety", "faithfulness", "relevance"}
    for template in RUBRICS.values():
        prompt = template.format(question="Q", answer="A", reference="R", context="C")
        assert '{"score": <integer 1-5>' in prompt and "Q" in prompt and "A" in prompt


def test_the_summary_reports_latency_percentiles():
    from workers.evaluate.judge import Verdict

    verdicts = [
        Verdict(float(1 + i % 5), "", None, latency_s=i + 1.0, prompt_tokens=0, completion_tokens=0, cost=0)
        for i in range(20)
    ]
    summary = judge_summary(verdicts)
    assert summary["latency_p50_s"] == pytest.approx(10.5)
    assert summary["latency_p95_s"] == pytest.approx(19.05)
    assert summary["mean_score"] == pytest.approx(3.0) and summary["score_counts"]["5"] == 4
    assert judge_summary([])["mean_score"] is None


def test_retrieval_recall_and_precision_at_k():
    metrics = retrieval_metrics(["d1", "d4"], ["d4", "d9", "d1", "d4"], k=2)
    assert (metrics["recall"], metrics["precision"], metrics["mrr"]) == (0.5, 0.5, 1.0)
    everything = retrieval_metrics(["d1", "d4"], ["d9", "d4", "d1", "d4"])
    assert (everything["recall"], everything["precision"], everything["mrr"]) == (1.0, 2 / 3, 0.5)


def test_retrieval_metrics_are_none_when_undefined():
    assert retrieval_metrics([], ["d1"])["recall"] is None
    assert retrieval_metrics(["d1"], [])["precision"] is None
    assert retrieval_metrics(["d1"], [])["recall"] == 0.0
    with pytest.raises(ValueError):
        retrieval_metrics(["d1"], ["d1"], k=0)
