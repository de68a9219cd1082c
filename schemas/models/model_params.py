"""The params of pipespec's built-in model types: what `train.model.params` may hold for each.

These are the params models of the built-in plugins (`pipespec.schemas.plugins_builtin`); the
trainers fill the same defaults (tasklib/model/keras_models.py, tasklib/compute/llm.py).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, StringConstraints

from pipespec.schemas.models.common import Duration, StrictModel

PositiveInt = Annotated[int, Field(ge=1)]
# A class label as data holds it: a string or an integer.
Label = Union[str, int]


class KerasParams(StrictModel):
    """Shared by the Keras model types."""

    epochs: PositiveInt = Field(5, description="Passes over the training data.")
    batch_size: PositiveInt = Field(32, description="Rows per training step.")
    seed: int = Field(42, description="Seed for weights and shuffling: the same data trains the same model.")
    learning_rate: float = Field(0.01, gt=0, lt=10, description="Adam's learning rate.")


class KerasClassifierParams(KerasParams):
    """Shared by the Keras classifiers."""

    positive_label: Label | None = Field(None, description="The positive class of a binary classifier (for "
                                                           "precision, recall, f1, roc_auc); default: the larger.")


class KerasTextClassifierParams(KerasClassifierParams):
    """`keras_text_classifier`: TextVectorization, an embedding, pooling, a dense layer."""

    max_tokens: PositiveInt = Field(20000, description="Vocabulary size.")
    embedding_dim: PositiveInt = Field(32, description="Width of the word embedding.")
    sequence_length: PositiveInt = Field(64, description="Tokens read per text.")


class KerasImageClassifierParams(KerasClassifierParams):
    """`keras_image_classifier`: a small CNN."""

    epochs: PositiveInt = Field(8, description="Passes over the training data.")
    learning_rate: float = Field(0.003, gt=0, lt=10, description="Adam's learning rate.")
    image_size: PositiveInt | None = Field(None, description="Side of the square images; default: read from the data.")
    filters: PositiveInt = Field(16, description="Filters of the first convolution.")


class KerasTabularClassifierParams(KerasClassifierParams):
    """`keras_tabular_classifier`: a dense network over numeric columns."""

    epochs: PositiveInt = Field(10, description="Passes over the training data.")
    hidden_units: PositiveInt | list[PositiveInt] = Field(default_factory=lambda: [32, 16],
                                                          description="Units of each hidden layer.")


class KerasTabularRegressorParams(KerasParams):
    """`keras_tabular_regressor`: a dense network over numeric columns, predicting a number."""

    epochs: PositiveInt = Field(10, description="Passes over the training data.")
    hidden_units: PositiveInt | list[PositiveInt] = Field(default_factory=lambda: [32, 16],
                                                          description="Units of each hidden layer.")


class LlmFinetuneParams(StrictModel):
    """`llm_finetune`: an LLMForge LoRA fine-tune on Anyscale."""

    base_model: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="A Hugging Face model id, e.g. `mistralai/Mistral-7B-Instruct-v0.1`.")
    epochs: PositiveInt = 3
    context_length: PositiveInt = 512
    learning_rate: float = Field(1e-4, gt=0, lt=1)
    num_devices: PositiveInt = 4
    train_batch_size_per_device: PositiveInt = 4
    eval_batch_size_per_device: PositiveInt = 4
    lora_rank: PositiveInt = 8
    lora_alpha: PositiveInt | None = Field(None, description="Default: twice the rank.")
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    accelerator_type: str | None = Field(None, description="Pins trainer workers to a GPU type, e.g. `A10G`.")
    system_prompt: str | None = Field(None, description="Prepended to every conversation.")
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    output_uri: str | None = Field(None, description="Where the LoRA weights go; default `<dataset>/_lora`.")


# --- `container`: the team's own code in its own image (docs/container-contract.md) -----------------

EnvName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,62}$")]
ParamScalar = Union[str, int, float, bool]
UserParam = Union[ParamScalar, list[ParamScalar], dict[str, ParamScalar]]


class ContainerEvaluation(StrictModel):
    """How a container model is scored on the holdout."""

    by: Literal["builtin", "command"] = Field(
        "builtin", description="`builtin`: pipespec loads the MLflow model the code wrote and computes the "
                               "metric; `command`: the image runs again in evaluate mode and reports metrics.json.")
    args: list[str] = Field(default_factory=list, description="Arguments of the evaluate run (with `by: command`).")


class ContainerParams(StrictModel):
    """`container`: train with the team's own image under the container contract (v1).

    The spec names the image and the arguments; what runs is the image (on Kubernetes or Anyscale)
    or, for local runs, the folder the platform policy maps that image to. Environment values come
    only from Airflow connections, never from the spec."""

    contract: Literal[1] = Field(1, description="The version of docs/container-contract.md the code implements.")
    image: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="The training image, pinned by tag or digest, allowed by the platform policy.")
    command: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        min_length=1, description="What to run in the image, e.g. `[python, train.py]`; no shell.")
    args: list[str] = Field(default_factory=list, description="Arguments after the command (data, not shell).")
    task: Literal["classification", "regression"] = Field("classification",
                                                          description="What the model predicts: decides the metrics.")
    hyperparams: dict[str, UserParam] = Field(default_factory=dict,
                                              description="Handed to the code in its params file, unchecked.")
    connections: dict[EnvName, str] = Field(
        default_factory=dict, description="Env prefix -> Airflow conn_id: the code gets `<PREFIX>_URI`, "
                                          "`<PREFIX>_LOGIN`, `<PREFIX>_PASSWORD`, `<PREFIX>_HOST` from the connection.")
    evaluation: ContainerEvaluation = Field(default_factory=ContainerEvaluation,
                                            description="`builtin` metrics on an MLflow model, or your own command.")
    timeout: Duration = Field("2h", description="The run is stopped (and fails, retryable) after this long.")
