from datatrove.data import Document

from curate_helpers import rows
from smollab.curate.config import FiltersConfig
from smollab.curate.filters import HEURISTICS, ScopedFilter, heuristic_blocks

# The same real pages twice: the human-extracted article body (clean) and the whole-page text
# with navigation and boilerplate (noisy), from the article-extraction benchmark.
CLEAN_ARTICLE = "aeb/042bb7b5fedab6eac7db576522b89b93904c237d344bcbe14a6a5ab7f7335856"
NOISY_PAGE_FOR = {
    "gopher_repetition": ("aeb/098bb3e96c0acdf36efdcde45fb9cca3f8c82c7cb2071b76097a1b96155f1eb2", "dup_para_frac"),
    "gopher_quality": ("aeb/08f793762792bd252c75fb57544cdf506ffcc04785136cb87503f02364b82b56", "gopher_too_many_hashes"),
    "c4": ("aeb/0d46122928b6f468cc4bbc694051d0dbae5702bc75a16dab82a99b58daf150a0", "curly_bracket"),
    "fineweb_quality": (CLEAN_ARTICLE, "line_punct_ratio"),
}


def _doc(record: dict, **metadata) -> Document:
    return Document(text=record["text"], id=record["id"], metadata=dict(metadata))


def test_each_filter_drops_a_noisy_real_page_and_keeps_the_clean_article():
    news = {r["id"]: r for r in rows("web_news_articles")}
    pages = {r["id"]: r for r in rows("web_fullpage_text_sample")}
    blocks = {b.step: b for b in heuristic_blocks(FiltersConfig())}
    assert list(blocks) == list(HEURISTICS)
    for name, (page_id, reason) in NOISY_PAGE_FOR.items():
        assert blocks[name].filter(_doc(pages[page_id])) == (False, reason), name
        assert blocks[name].filter(_doc(news[CLEAN_ARTICLE])) is True, name


def test_exempt_inputs_pass_the_prose_heuristics_and_are_counted():
    code = rows("code_thealgorithms_python", 20)
    block = heuristic_blocks(FiltersConfig(gopher_repetition=None, c4=None, fineweb_quality=None))[0]
    assert isinstance(block, ScopedFilter) and block.step == "gopher_quality"
    judged = [block.filter(_doc(r)) for r in code]
    assert any(result is not True for result in judged), "prose heuristics should reject some code"
    kept = list(block.run(iter(_doc(r, heuristics_exempt=True) for r in code)))
    assert len(kept) == len(code)
    assert block.stats["exempt"].total == len(code)


def test_unknown_filter_option_names_the_field():
    import pytest

    from smollab.errors import SmollabError

    with pytest.raises(SmollabError, match="curate.filters.c4"):
        heuristic_blocks(FiltersConfig(c4={"no_such_option": 1}))


def test_shared_word_splits_give_the_stock_filters_verdicts_and_texts():
    """One spaCy split per text for all filters (the stage's speed-up) changes no verdict, reason or text:
    the stock datatrove filters, each splitting on its own, agree document by document on real pages."""
    records = rows("web_fullpage_text_sample", 40) + rows("web_news_articles", 20) + rows("web_c4_samples", 40)
    cfg = FiltersConfig()
    stock = [cls(**getattr(cfg, key)) for key, cls in HEURISTICS.items()]
    shared = heuristic_blocks(cfg)
    assert len({id(block.inner.language) for block in shared}) == 1, "the filters should share one word splitter"

    def verdicts(filters):
        out = []
        for record in records:
            doc = _doc(record)
            for step in filters:
                verdict = step.filter(doc)
                if verdict is not True:
                    out.append((record["id"], verdict))
                    break
            else:
                out.append((record["id"], doc.text))
        return out

    expected = verdicts(stock)
    assert verdicts(shared) == expected
    assert {v for _, v in expected if isinstance(v, tuple)} and any(isinstance(v, str) for _, v in expected)
