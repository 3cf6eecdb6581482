"""Model registry, promotion and serving: RegisteredModel, ModelVersion, PromotionRequest, GatePolicy, Deployment."""
