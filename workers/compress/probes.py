"""The texts every version of a family is benchmarked on: fixed, so latency compares across jobs and versions.

Support-desk requests in English and Chinese, from a few words to a long paragraph (the spread a serving model
sees); a classifier reads them as they are, a causal LM gets each as a chat user message.
"""

PROBE_TEXTS = [
    "Where is my order?",
    "I was charged twice for the same subscription this month, can you refund one of the payments?",
    "The parcel arrived with a cracked screen. I would like to return it and get a replacement as soon as possible.",
    "How do I change the delivery address of an order that has already shipped?",
    "我的订单什么时候发货？",
    "退货需要提供发票吗？我上周买的耳机有杂音，想退货退款。",
    "Cancel my plan.",
    "My invoice shows a VAT number that is not mine; please correct it and send me a new invoice for March.",
    "Can I pay with a gift card and a credit card on the same order, and what happens if I return one item?",
    "The tracking page has said 'label created' for six days now. Is the package lost? I need it before Friday "
    "for a trip and I am happy to pay for express shipping if that helps.",
    "为什么我的退款还没有到账？已经过去十个工作日了。",
    "Do you ship to Norway?",
    "I returned the shoes two weeks ago but the refund is still pending. The courier confirmed delivery to your "
    "warehouse on the 3rd. Order number 55-1023.",
    "Please update my billing email to finance@example.com.",
    "请问可以开具增值税专用发票吗？",
    "The product page said free returns within 30 days but the return form asks me to pay for the label.",
]
