import json

import pytest

from service.pipeline import bio, span_sets
from service.pipeline.span_sets import Span

LABELS = ("person", "location")
TEXT = "Ada Lovelace lived in London ."


def test_canonical_orders_spans_and_checks_quoted_text() -> None:
    given = [
        {"start": 22, "end": 28, "label": "location", "text": "London"},
        {"start": 0, "end": 12, "label": "person"},
    ]
    name = span_sets.canonical(given, text=TEXT, labels=LABELS)
    assert json.loads(name) == [[0, 12, "person"], [22, 28, "location"]]
    # The same set from a JSON string (as CSV stores it) has the same name; an empty set is a valid answer.
    assert span_sets.canonical(json.dumps(given), text=TEXT, labels=LABELS) == name
    assert span_sets.canonical([], text=TEXT, labels=LABELS) == "[]"
    assert span_sets.shown(name, TEXT)[1] == {"start": 22, "end": 28, "label": "location", "text": "London"}


@pytest.mark.parametrize(
    ("given", "fault"),
    [
        ([{"start": 5, "end": 5, "label": "person"}], "empty or outside"),
        ([{"start": 20, "end": 40, "label": "person"}], "empty or outside"),
        ([{"start": -1, "end": 3, "label": "person"}], "empty or outside"),
        ([{"start": 0, "end": 3, "label": "planet"}], "label 'planet'"),
        ([{"start": 0, "end": 3, "label": "person", "text": "Bob"}], "gives text 'Bob'"),
        ([{"start": 0, "end": 12, "label": "person"}, {"start": 4, "end": 8, "label": "location"}], "overlap"),
        ([{"start": "0", "end": 3, "label": "person"}], "integer start and end"),
        ([{"start": True, "end": 3, "label": "person"}], "integer start and end"),
        ([{"start": 0, "end": 3, "label": "person", "score": 1}], "unknown key"),
        (["person"], "not an object"),
        ({"start": 0}, "must be a list"),
        ("not json", "not a JSON list"),
    ],
)
def test_bad_spans_are_refused_with_the_reason(given: object, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        span_sets.canonical(given, text=TEXT, labels=LABELS)


def test_entity_report_counts_exact_matches_only() -> None:
    truth = [span_sets.set_name([Span(0, 12, "person"), Span(22, 28, "location")]), "[]"]
    # One hit, one span with the wrong end, one spurious span on the second text.
    predicted = [
        span_sets.set_name([Span(0, 12, "person"), Span(22, 27, "location")]),
        span_sets.set_name([Span(0, 3, "person")]),
    ]
    report = span_sets.entity_report(y_true=truth, y_pred=predicted, labels=LABELS)
    assert report["per_class"]["person"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert report["per_class"]["location"]["f1"] == 0.0
    # micro: 1 hit of 3 predicted and 2 true spans.
    assert report.get("micro_f1") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert report["accuracy"] == 0.0
    assert span_sets.span_f1(truth[0], predicted[0]) == 0.5
    assert span_sets.span_f1("[]", "[]") == 1.0


def test_tags_from_offsets_and_back() -> None:
    # Tokens as a BERT tokenizer gives them: [CLS], "ada", "love", "##lace", "lived", "in", "london", ".", [SEP].
    offsets = [(0, 0), (0, 3), (4, 8), (8, 12), (13, 18), (19, 21), (22, 28), (29, 30), (0, 0)]
    spans = [Span(0, 12, "person"), Span(22, 28, "location")]
    tags = bio.token_tags(offsets, spans, LABELS)
    names = bio.tag_names(LABELS)
    assert [names[t] if t != bio.IGNORED else None for t in tags] == [
        None,
        "B-person",
        "I-person",
        "I-person",
        "O",
        "O",
        "B-location",
        "O",
        None,
    ]
    assert bio.decode(offsets, tags, LABELS) == spans


def test_decode_reads_runs_as_seqeval_does() -> None:
    offsets = [(0, 3), (4, 8), (9, 12), (13, 16)]
    index = {name: i for i, name in enumerate(bio.tag_names(LABELS))}
    # An I- tag after O opens an entity; a B- tag splits two adjacent ones; a label change splits too.
    tags = [index[t] for t in ("I-person", "B-person", "I-location", "O")]
    assert bio.decode(offsets, tags, LABELS) == [Span(0, 3, "person"), Span(4, 8, "person"), Span(9, 12, "location")]


def test_answer_json_is_what_the_teacher_is_shown() -> None:
    name = span_sets.set_name([Span(22, 28, "location")])
    assert json.loads(span_sets.answer_json(name, TEXT)) == {"entities": [{"text": "London", "label": "location"}]}


def test_entity_scores_are_seqeval_scores() -> None:
    """On WNUT 17 posts (space-joined tokens) and predictions made by dropping, shifting and relabelling their
    entities, the span-set report gives seqeval's micro-F1 and per-label F1 over the same BIO sequences."""
    import random
    from pathlib import Path

    from seqeval.metrics import classification_report, f1_score

    rows = [json.loads(line) for line in (Path(__file__).parents[2] / "bench/data/wnut17_train.jsonl").open()][:400]
    labels = sorted({span["label"] for row in rows for span in row["spans"]})
    rng = random.Random(0)
    truth_names, said_names, truth_tags, said_tags = [], [], [], []
    for row in rows:
        starts, position = [], 0
        for token in row["text"].split(" "):
            starts.append((position, position + len(token)))
            position += len(token) + 1
        truth = [Span(s["start"], s["end"], s["label"]) for s in row["spans"]]
        said = []
        for span in truth:
            roll = rng.random()
            if roll < 0.2:
                continue
            if roll < 0.3:
                span = span._replace(label=rng.choice(labels))
            elif roll < 0.4:
                # Grow the span to the next token, when there is one.
                after = [end for start, end in starts if start > span.end]
                span = span._replace(end=after[0]) if after else span
            said.append(span)
        if rng.random() < 0.1:
            start, end = rng.choice(starts)
            if not any(s.start < end and start < s.end for s in said):
                said.append(Span(start, end, rng.choice(labels)))
        truth_names.append(span_sets.set_name(truth))
        said_names.append(span_sets.set_name(said))
        truth_tags.append(_word_tags(starts, truth))
        said_tags.append(_word_tags(starts, said))
    ours = span_sets.entity_report(y_true=truth_names, y_pred=said_names, labels=labels)
    assert ours.get("micro_f1") == pytest.approx(f1_score(truth_tags, said_tags))
    theirs = classification_report(truth_tags, said_tags, output_dict=True)
    for label in labels:
        assert ours["per_class"][label]["f1"] == pytest.approx(theirs[label]["f1-score"]), label
        assert ours["per_class"][label]["support"] == theirs[label]["support"], label


def _word_tags(words: list[tuple[int, int]], spans: list[Span]) -> list[str]:
    tags = []
    for start, end in words:
        inside = [s for s in spans if s.start <= start and end <= s.end]
        tags.append("O" if not inside else f"{'B' if inside[0].start == start else 'I'}-{inside[0].label}")
    return tags
