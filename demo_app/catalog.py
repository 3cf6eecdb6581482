"""The demo workspace's fixed names, shared by the seed (``demo_app.seed``) and the guided run (``demo_app.loop``).

A fictional product, Aurora Home (a shop for smart home appliances), runs a customer-support assistant. Two paths:

- classification: an intent router (all-MiniLM-L6-v2 with a classification head) sends each customer message to
  one of ``INTENTS``; its error cases hold the message, the wrong intent it chose (``bad_output``) and the right
  one (``expected_output``).
- chat: the assistant itself (SmolLM2-135M-Instruct) answers questions; its error cases hold a wrong policy fact
  or a non-standard term, with the corrected answer.
"""

PRODUCT = "Aurora Home"
FEATURE_INTENT = "intent-router"
FEATURE_CHAT = "support-assistant"

# The intent router's labels, in the order the seed writes them.
INTENTS = (
    "order_status",
    "cancel_order",
    "refund",
    "change_address",
    "warranty_repair",
    "installation",
    "account_access",
    "invoice",
)

# Dataset names the seed and the guided run use.
GENERAL_INTENTS_DATASET = "aurora-intents-general"  # is_general: the classifier's forgetting check
INTENT_DATASET = "aurora-intent-fixes"
CHAT_DATASET = "aurora-support-fixes"
